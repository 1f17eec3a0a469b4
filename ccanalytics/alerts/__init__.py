"""Alerts evaluated from the database: the rules as data, their evaluation with durable delivery,
and the delivery channels (e-mail, Telegram) that reports use too."""
