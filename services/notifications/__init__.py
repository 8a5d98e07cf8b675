"""Notifications of the Anomaly Detector: urgent alerts and emails, delivered at least once.

The detector ends with two branches of windowed failed-login counts, one per
severity, each de-duplicated upstream to one record per (user, window):

    alerts.process(AlertSink.from_env(prefix)).to(f"{prefix}anomalies")
    emails.process(EmailSink.from_env(prefix)).to(f"{prefix}anomalies")

`AlertSink` and `EmailSink` are processor suppliers: `KStream.process` calls
them once per task. Their processors get records keyed by
`Windowed(user_id, TimeWindow(start, end))` with the count as value, and

- forward `Notification.to_json()` downstream at once (the audit topic);
- buffer the notification, and deliver the buffer in `flush()`, which the
  stream worker calls at each commit before it commits the input offsets.

When delivery fails for a while (server down, timeout, HTTP 5xx or 429, SMTP
4xx), `flush()` raises `RetriableError`: the worker skips the commit, pauses
input and calls `flush()` again with backoff; the undelivered notifications
stay buffered. A notification is thus delivered at least once: never dropped,
possibly repeated after a crash (its input is then processed again). The
webhook's `dedup_key` and the email's Message-ID let the receiver merge
repeats. This holds as long as nothing upstream records a notification as
sent before `flush()` has delivered it: a de-duplication step whose store is
changelogged does, and after a crash or rebalance its restored state
suppresses the replayed counts of notifications that were still buffered.

A permanent failure (HTTP 4xx, SMTP 5xx, bad credentials) raises
`StreamsException`: retrying a bad request forever would only hide it.

Configuration (environment variables, read by `from_env`):

- `ALERT_WEBHOOK_URL`: a PagerDuty Events API v2 endpoint (or a compatible
  receiver), e.g. https://events.pagerduty.com/v2/enqueue; unset: alerts are logged.
- `ALERT_ROUTING_KEY`: the integration's routing key, sent in the body (never logged).
- `SMTP_URL`: `smtp://user:password@host:port`, `smtps://...` for implicit TLS,
  `smtp://...?starttls=true` for STARTTLS; unset: emails are logged.
- `EMAIL_FROM`, `EMAIL_TO`: sender and recipients (comma-separated); required
  with `SMTP_URL`.

Messages and logs never show a password, a routing key or a webhook's path
and query (which often hold a token): servers are shown as `scheme://host:port`.

The modules: `notification` (the Notification and its JSON), `delivery` (the
Delivery protocol, and the log lines used when nothing is configured),
`webhook` (PagerDuty-style alerts), `smtp` (emails), `processors` (the
processors, and AlertSink and EmailSink, their suppliers).
"""
