-- The decision log (issue 7): one row per decision returned to a caller, keyed by its decision id
-- (a replayed batch inserts nothing twice). The columns are what GET /v1/audit filters on; the
-- whole entry is kept as written. Retention deletes by `time` (indexed). Not partitioned: a
-- unique decision_id (the sinks' idempotency key) cannot be enforced across partitions keyed by
-- time alone.
create table if not exists warden_audit_log (
  decision_id    text        primary key,
  time           timestamptz not null,
  kind           text        not null check (kind in ('check', 'plan', 'delegation', 'revocation', 'admin')),
  policy_version text        not null,
  source         text        not null,
  decision       text        not null check (decision in ('ALLOW', 'DENY')),
  subject        text,
  agent          text,
  -- `kind/id` of every resource decided.
  resources      text[]      not null,
  entry          jsonb       not null
);
create index if not exists warden_audit_log_time on warden_audit_log (time, decision_id);
create index if not exists warden_audit_log_subject on warden_audit_log (subject, time);
create index if not exists warden_audit_log_agent on warden_audit_log (agent, time);
create index if not exists warden_audit_log_resources on warden_audit_log using gin (resources);
