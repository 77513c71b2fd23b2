"""The CLI's bad input: one line on stderr naming what is wrong and what is allowed, a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.cli import EXIT_SOURCE, EXIT_USAGE, main
from tests.harness.prometheus import free_port

GOOD = ["backend=vllm", "deployment=llama", "targetQueuePerReplica=4", "scaleToZero=false"]


def explain(*extra: str, metadata: list[str] = GOOD) -> list[str]:
    return ["explain", "--prometheus-url", "http://127.0.0.1:1", "--kubernetes", "off",
            "--namespace", "ml", "--name", "so", *extra, "--metadata", *metadata]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (explain(metadata=[*GOOD, "colour=blue"]), ["metadata key 'colour'", "allowed keys"]),
        (explain(metadata=["backend=vllm", "targetQueuePerReplica=4"]), ["'deployment'", "required"]),
        (explain(metadata=[*GOOD, "targetQueuePerReplica"]), ["--metadata", "KEY=VALUE"]),
        (explain(metadata=["backend=tgi", *GOOD[1:]]), ["'backend'", "vllm", "triton"]),
        (explain(metadata=[*GOOD, "coldStartSeconds=-5"]), ["'coldStartSeconds'", "(0, 3600]"]),
        (explain(metadata=[*GOOD[:3], "scaleToZero=maybe"]), ["'scaleToZero'", "true or false"]),
        (explain(metadata=GOOD[:3]), ["'activationQuery'", "is required", 'scaleToZero: "false"']),
        (
            explain("--activation-namespace-labels", "tenant,__name__"),
            ["--activation-namespace-labels", "'__name__'"],
        ),
        (explain(metadata=[*GOOD, "activationQuery=up"]), ["'activationQuery'", 'namespace="ml"']),
        # every problem in one line: the bad backend and the missing target (issue 12)
        (
            explain(metadata=["backend=foo", "deployment=llama"]),
            ["metadata key 'backend': must be one of 'vllm' or 'triton'", "; key 'targetQueuePerReplica/"],
        ),
        (
            explain(metadata=["backend=foo", "colour=blue", "activationQuery=up", "latencyQuantile=2"]),
            [
                "key 'backend'",
                "key 'deployment': is required",
                "key 'latencyQuantile': is only allowed together with latencySloSeconds and must be",
                "key 'activationQuery'",
                'namespace="ml"',
                "key 'colour': is not a known key; allowed keys:",
            ],
        ),
        (
            explain(metadata=[*GOOD, 'activationQuery=sum(x{namespace="kube-system"})']),
            ["'activationQuery'", 'namespace="ml"'],
        ),
        (
            [
                "explain",
                "--prometheus-url",
                "ftp://x",
                "--namespace",
                "ml",
                "--name",
                "so",
                "--metadata",
                *GOOD,
            ],
            ["--prometheus-url", "http://"],
        ),
        (
            [
                "explain",
                "--prometheus-url",
                "http://127.0.0.1:1",
                "--namespace",
                "ML!",
                "--name",
                "so",
                "--metadata",
                *GOOD,
            ],
            ["'namespace'", "RFC 1123"],
        ),
        (["serve", "--grpc-port", "70000"], ["--grpc-port", "0-65535"]),
        (["serve", "--refresh-seconds", "0"], ["--refresh-seconds", "seconds"]),
        (["serve", "--refresh-nice", "20"], ["--refresh-nice", "0 to 19"]),
        (["serve", "--refresh-nice", "low"], ["--refresh-nice", "0 to 19", "'low'"]),
        (
            ["serve", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
            ["--tls-cert", "no such file"],
        ),
        (["frobnicate"], ["invalid choice", "serve", "explain"]),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(
    argv: list[str], names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:"), err
    for name in names:
        assert name in err, (name, err)


def test_bad_environment_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCALER_METRICS_PORT", "eighty")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"])
    assert exit_info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--metrics-port" in err and "'eighty'" in err and err.count("\n") == 1


def test_unreachable_prometheus_exits_1_naming_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    argv = ["explain", "--prometheus-url", f"http://127.0.0.1:{port}", "--kubernetes", "off",
            "--query-timeout", "2", "--namespace", "ml", "--name", "so", "--metadata", *GOOD]  # fmt: skip
    assert main(argv) == EXIT_SOURCE
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and err.count("\n") == 1


def test_unreadable_kubeconfig_exits_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("this is not a kubeconfig")
    assert main(explain("--kubernetes", str(bad))) == EXIT_SOURCE
    err = capsys.readouterr().err
    assert "Kubernetes" in err and err.count("\n") == 1
