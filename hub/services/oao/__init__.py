"""OAO: online orders dispatched to offline stores, SLA timers, installer sheets, cross-sell."""
