"""The outbound delivery engine: webhooks, pipeline deliveries and alert notifications share it.

One abstract model (`models.OutboundDelivery`), one service (`services.delivery_attempt`), one task
(`tasks.deliver`) and one sweep; the kinds are registered in `kinds.DELIVERY_KINDS` (docs/operations.md,
"Deliveries").
"""
