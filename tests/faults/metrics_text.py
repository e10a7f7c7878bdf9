"""Reading the pods' Prometheus exposition (the text format, parsed with prometheus_client's own parser)."""

from __future__ import annotations

from collections import Counter

import requests
from prometheus_client.parser import text_string_to_metric_families


def samples(base_url: str, name: str, label: str) -> Counter[str]:
    """Values of sample `name` keyed by one label (summed over the rest)."""
    text = requests.get(base_url + "/metrics", timeout=5).text
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get(label, "")] += int(sample.value)
    return out


def rejected(base_url: str) -> Counter[str]:
    """predictor_artifacts_rejected_total by reason, over every worker of the pod."""
    return samples(base_url, "predictor_artifacts_rejected_total", "reason")


def serving(base_url: str) -> Counter[str]:
    """Workers serving each version (predictor_model_serving is a livesum gauge)."""
    return +samples(base_url, "predictor_model_serving", "version")
