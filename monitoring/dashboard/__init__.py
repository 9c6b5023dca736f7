"""The operator dashboard (/dashboard/): staff pages over the monitoring selectors, live over SSE."""
