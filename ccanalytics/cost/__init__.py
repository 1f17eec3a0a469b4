"""Money: prices with effective dates, the cost of each call, the cost review, fixed costs shared
per call, the cost levers, and the model router with its replay over past calls."""
