"""Every write in the registry, by area: catalog (services, instances), state (results, TTL), scheduling."""

from registry.services.catalog import (
    instance_deregister,
    instance_register,
    instance_set_maintenance,
    service_create,
    service_delete,
    service_update,
)
from registry.services.scheduling import check_run_now, checks_claim_due, checks_run_batch
from registry.services.state import (
    check_mark_due,
    check_outcomes_apply,
    check_results_prune,
    check_set_enabled,
    check_ttl_update,
    instances_reap_critical,
    instances_refresh_status,
    ttl_checks_expire,
)

__all__ = [
    "check_mark_due",
    "check_outcomes_apply",
    "check_results_prune",
    "check_run_now",
    "check_set_enabled",
    "check_ttl_update",
    "checks_claim_due",
    "checks_run_batch",
    "instance_deregister",
    "instance_register",
    "instance_set_maintenance",
    "instances_reap_critical",
    "instances_refresh_status",
    "service_create",
    "service_delete",
    "service_update",
    "ttl_checks_expire",
]
