"""Alerting: rule evaluation, alert states (Prometheus semantics), flapping, grouping (Alertmanager semantics).

`evaluation` turns a rule and the current values of its targets into state transitions; `states` is the
pure state machine; `grouping` decides, per aggregation group, when a notification goes out and writes it
to the outbox (`models.Notification`), which the platform's delivery engine sends.
"""
