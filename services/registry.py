"""The services of the example system, by console command name."""

from __future__ import annotations

from services import aggregator, anomaly_detector, text_processor
from services.service import Service

SERVICES: dict[str, Service] = {
    service.name: service
    for service in (text_processor.SERVICE, aggregator.SERVICE, anomaly_detector.SERVICE)
}
