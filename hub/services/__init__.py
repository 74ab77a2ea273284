"""Business rules of the hub: routes parse and authorise, services decide."""
