"""``python -m scaler serve`` and ``python -m scaler explain``.

Every ``serve`` flag can also be set by an environment variable (shown in ``--help``), so the
Deployment can configure it either way. Bad input: one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from scaler.core.config import ConfigError, validate_prometheus_url
from scaler.core.decision import decide
from scaler.core.promql import NAMESPACE_LABELS, validate_namespace_labels
from scaler.core.target import target_from_ref
from scaler.describe import describe
from scaler.serve.server import ServeOptions, serve_forever
from scaler.sources.kube import KubeError, open_kubernetes
from scaler.sources.prometheus import PrometheusAuth, PrometheusSource, SourceError, target_key

EXIT_USAGE = 2
EXIT_SOURCE = 1
EXIT_NO_DECISION = 3


class CliError(Exception):
    """A one-line message for stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], the error saying it is ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


_port = _whole_number(0, 65535, "a port number 0-65535")
_niceness = _whole_number(0, 19, "a whole number from 0 to 19")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 86400), got {value}")
    return value


def _url(text: str) -> str:
    try:
        return validate_prometheus_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(text: str) -> str:
    import re

    if not re.fullmatch(r"[1-9][0-9]{0,4}(ms|s|m|h)", text):
        raise argparse.ArgumentTypeError(f"must be a PromQL duration such as 30s or 1m, got {text!r}")
    return text


def _labels(text: str) -> tuple[str, ...]:
    labels = tuple(x.strip() for x in text.split(",") if x.strip())
    try:
        return validate_namespace_labels(labels)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_prometheus_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prometheus-url",
        type=_url,
        default=_env("SCALER_PROMETHEUS_URL"),
        help="default Prometheus for ScaledObjects without serverAddress [SCALER_PROMETHEUS_URL]",
    )
    p.add_argument(
        "--query-timeout",
        type=_seconds,
        default=_env("SCALER_QUERY_TIMEOUT", "5"),
        help="seconds per Prometheus query [SCALER_QUERY_TIMEOUT, 5]",
    )
    p.add_argument(
        "--rate-window",
        type=_window,
        default=_env("SCALER_RATE_WINDOW", "1m"),
        help="range of rate() for throughput and latency, >= 4 scrape intervals [SCALER_RATE_WINDOW, 1m]",
    )
    p.add_argument(
        "--kubernetes",
        default=_env("SCALER_KUBERNETES", "auto"),
        help="where warming pods and start-up times come from: auto (in-cluster or default kubeconfig, "
        "else kube-state-metrics), off (kube-state-metrics only), or a kubeconfig path "
        "[SCALER_KUBERNETES, auto]",
    )
    p.add_argument(
        "--activation-namespace-labels",
        type=_labels,
        default=_env("SCALER_ACTIVATION_NAMESPACE_LABELS", ""),
        help="comma-separated labels that may pin an activationQuery's selectors to the ScaledObject's "
        "namespace, besides namespace, route_namespace (KEDA HTTP add-on) and exported_namespace "
        "[SCALER_ACTIVATION_NAMESPACE_LABELS]",
    )
    p.add_argument(
        "--history-step-seconds",
        type=_seconds,
        default=_env("SCALER_HISTORY_STEP_SECONDS", "15"),
        help="resolution of the demand history read for forecasts and idle time; the scrape interval "
        "[SCALER_HISTORY_STEP_SECONDS, 15]",
    )
    p.add_argument(
        "--prometheus-bearer-token-file",
        default=_env("SCALER_PROMETHEUS_BEARER_TOKEN_FILE"),
        help="file holding a bearer token for Prometheus [SCALER_PROMETHEUS_BEARER_TOKEN_FILE]",
    )
    p.add_argument(
        "--prometheus-basic-user",
        default=_env("SCALER_PROMETHEUS_BASIC_USER"),
        help="basic-auth user for Prometheus [SCALER_PROMETHEUS_BASIC_USER]",
    )
    p.add_argument(
        "--prometheus-basic-password-file",
        default=_env("SCALER_PROMETHEUS_BASIC_PASSWORD_FILE"),
        help="file holding the basic-auth password [SCALER_PROMETHEUS_BASIC_PASSWORD_FILE]",
    )
    p.add_argument(
        "--prometheus-ca-file",
        default=_env("SCALER_PROMETHEUS_CA_FILE"),
        help="CA bundle to verify an https Prometheus [SCALER_PROMETHEUS_CA_FILE]",
    )


def _auth(args: argparse.Namespace) -> PrometheusAuth:
    for flag in ("prometheus_bearer_token_file", "prometheus_basic_password_file", "prometheus_ca_file"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            raise CliError(f"--{flag.replace('_', '-')}: no such file: {path}")
    return PrometheusAuth(
        bearer_token_file=args.prometheus_bearer_token_file,
        basic_user=args.prometheus_basic_user,
        basic_password_file=args.prometheus_basic_password_file,
        ca_file=args.prometheus_ca_file,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m scaler", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the KEDA external scaler (gRPC) and its metrics endpoint")
    serve.add_argument(
        "--grpc-port",
        type=_port,
        default=_env("SCALER_GRPC_PORT", "9090"),
        help="gRPC port for KEDA, health and reflection [SCALER_GRPC_PORT, 9090]",
    )
    serve.add_argument(
        "--metrics-port",
        type=_port,
        default=_env("SCALER_METRICS_PORT", "8080"),
        help="HTTP port of the scaler's own /metrics [SCALER_METRICS_PORT, 8080]",
    )
    serve.add_argument(
        "--bind-address",
        default=_env("SCALER_BIND_ADDRESS", "[::]"),
        help="address to bind gRPC on [SCALER_BIND_ADDRESS, [::]]",
    )
    _add_prometheus_flags(serve)
    serve.add_argument(
        "--refresh-seconds",
        type=_seconds,
        default=_env("SCALER_REFRESH_SECONDS", "2"),
        help="how often every ScaledObject's data is re-read [SCALER_REFRESH_SECONDS, 2]",
    )
    serve.add_argument(
        "--refresh-in-thread",
        action="store_true",
        help="collect and decide in a thread of the serving process instead of a child process (the "
        "child keeps the refresh's Python off the GIL the RPCs need)",
    )
    serve.add_argument(
        "--refresh-nice",
        type=_niceness,
        default=_env("SCALER_REFRESH_NICE", "10"),
        help="niceness of the refresh process, 0-19: KEDA's calls come first and the refresh takes what "
        "is left of the CPU [SCALER_REFRESH_NICE, 10]",
    )
    serve.add_argument(
        "--staleness-seconds",
        type=_seconds,
        default=_env("SCALER_STALENESS_SECONDS", "60"),
        help="answer UNAVAILABLE when data is older than this [SCALER_STALENESS_SECONDS, 60]",
    )
    serve.add_argument(
        "--tls-cert", default=_env("SCALER_TLS_CERT"), help="server certificate PEM [SCALER_TLS_CERT]"
    )
    serve.add_argument(
        "--tls-key", default=_env("SCALER_TLS_KEY"), help="server private key PEM [SCALER_TLS_KEY]"
    )
    serve.add_argument(
        "--tls-client-ca",
        default=_env("SCALER_TLS_CLIENT_CA"),
        help="require client certificates signed by this CA (mTLS) [SCALER_TLS_CLIENT_CA]",
    )
    serve.add_argument(
        "--log-level",
        default=_env("SCALER_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[SCALER_LOG_LEVEL, info]",
    )

    explain = sub.add_parser(
        "explain", help="print the decision the service would give a ScaledObject, and why"
    )
    _add_prometheus_flags(explain)
    explain.add_argument("--namespace", required=True, help="the ScaledObject's namespace")
    explain.add_argument("--name", required=True, help="the ScaledObject's name")
    explain.add_argument(
        "--metadata",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="the trigger's metadata, as in the ScaledObject",
    )
    explain.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text: a short readable answer (default); json: every field of the decision",
    )
    return parser


def _parse_metadata_pairs(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--metadata: expected KEY=VALUE, got {pair!r}")
        if key in out:
            raise CliError(f"--metadata: key {key!r} given twice")
        out[key] = value
    return out


def explain(args: argparse.Namespace) -> int:
    metadata = _parse_metadata_pairs(args.metadata)
    labels = (*NAMESPACE_LABELS, *(x for x in args.activation_namespace_labels if x not in NAMESPACE_LABELS))
    target = target_from_ref(args.namespace, args.name, metadata, labels)
    url = target.config.server_address or args.prometheus_url
    if url is None:
        raise CliError("no Prometheus: pass --prometheus-url or the serverAddress metadata key")
    source = PrometheusSource(
        url,
        timeout_s=args.query_timeout,
        rate_window=args.rate_window,
        auth=_auth(args),
        history_step_s=args.history_step_seconds,
        kube=open_kubernetes(args.kubernetes, timeout_s=args.query_timeout),
        namespace_labels=labels,
    )
    obs = source.collect([target])[target_key(target)]
    if obs.error is not None:
        raise CliError(obs.error)
    decision = decide(obs.signals, obs.state, target.config, time.time())
    if args.output == "text":
        header = (
            f"ScaledObject: {target.namespace}/{target.name} (Deployment {target.config.deployment}, "
            f"{target.config.backend.value}; Prometheus {url})",
        )
        print(describe(decision, header), end="")
        return 0 if decision.valid else EXIT_NO_DECISION
    out = {
        "namespace": target.namespace,
        "scaledobject": target.name,
        "deployment": target.config.deployment,
        "prometheus": url,
        **decision.to_dict(),
        # The clean start-ups the learned cold start is the p90 of (details.notes.cold_start: left out).
        "cold_start_samples_s": list(obs.state.cold_start_samples_s),
    }
    print(json.dumps(out, indent=2, sort_keys=False))
    return 0 if decision.valid else EXIT_NO_DECISION


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            logging.basicConfig(
                level=args.log_level.upper(),
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                stream=sys.stderr,
            )
            for flag in ("tls_cert", "tls_key", "tls_client_ca"):
                path = getattr(args, flag)
                if path and not os.path.isfile(path):
                    raise CliError(f"--{flag.replace('_', '-')}: no such file: {path}")
            if bool(args.tls_cert) != bool(args.tls_key):
                raise CliError("--tls-cert and --tls-key must be given together")
            if args.tls_client_ca and not args.tls_cert:
                raise CliError("--tls-client-ca needs --tls-cert and --tls-key")
            options = ServeOptions(
                grpc_port=args.grpc_port,
                metrics_port=args.metrics_port,
                bind_address=args.bind_address,
                prometheus_url=args.prometheus_url,
                refresh_s=args.refresh_seconds,
                staleness_s=args.staleness_seconds,
                query_timeout_s=args.query_timeout,
                rate_window=args.rate_window,
                auth=_auth(args),
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_client_ca=args.tls_client_ca,
                kubernetes=args.kubernetes,
                history_step_s=args.history_step_seconds,
                activation_namespace_labels=args.activation_namespace_labels,
                refresh_process=not args.refresh_in_thread,
                refresh_nice=args.refresh_nice,
            )
            asyncio.run(serve_forever(options))
            return 0
        return explain(args)
    except (ConfigError, CliError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, KubeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SOURCE
