"""Load simulations: replay LLM request traces through a simulated vLLM/Triton fleet, with KEDA and the HPA
modelled, under this project's scaler (``scaler.core.decision.decide``, unchanged) and the autoscalers
people use today, and score them against a lower bound.

Modules: ``trace`` (requests), ``profile`` (calibrated hardware), ``replica`` (the per-replica serving model),
``fleet`` (replicas, routing, cold starts, metrics), ``controlplane`` (scrape, KEDA, HPA, Knative KPA),
``policy`` (what each autoscaler reads and asks; the oracle bound), ``engine`` (the time loop), ``report``
(summary.json/md, plots), ``openmetrics`` (export), ``closedloop`` (the real gRPC server in the loop).
"""
