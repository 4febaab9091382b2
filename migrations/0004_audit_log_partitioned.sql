-- The decision log, partitioned by day (issue 7). Retention drops whole days instead of deleting
-- row by row, and a day's rows sit together. The key becomes (decision_id, time): a unique index
-- of a partitioned table must hold the partition key, and it keeps the sinks' idempotency, because
-- a replayed entry carries the time it was recorded with. Day partitions
-- (`warden_audit_log_pYYYYMMDD`, UTC) are created ahead of time by the broker
-- (ensureAuditPartitions, at start and hourly); rows for a day without one land in the default
-- partition and are moved when that day's partition is created.
drop index if exists warden_audit_log_time;
drop index if exists warden_audit_log_subject;
drop index if exists warden_audit_log_agent;
drop index if exists warden_audit_log_resources;
alter table warden_audit_log drop constraint if exists warden_audit_log_pkey;
alter table warden_audit_log rename to warden_audit_log_0003;

create table warden_audit_log (
  decision_id    text        not null,
  time           timestamptz not null,
  kind           text        not null check (kind in ('check', 'plan', 'delegation', 'revocation', 'admin')),
  policy_version text        not null,
  source         text        not null,
  decision       text        not null check (decision in ('ALLOW', 'DENY')),
  subject        text,
  agent          text,
  -- `kind/id` of every resource decided.
  resources      text[]      not null,
  -- json, not jsonb: the entry is only stored and returned whole (filters read the columns
  -- above), and json skips the conversion jsonb pays on every insert.
  entry          json        not null,
  primary key (decision_id, time)
) partition by range (time);
create table warden_audit_log_default partition of warden_audit_log default;
create index warden_audit_log_time on warden_audit_log (time, decision_id);
create index warden_audit_log_subject on warden_audit_log (subject, time);
create index warden_audit_log_agent on warden_audit_log (agent, time);
create index warden_audit_log_resources on warden_audit_log using gin (resources);

insert into warden_audit_log select decision_id, time, kind, policy_version, source, decision, subject, agent, resources, entry::json from warden_audit_log_0003;
drop table warden_audit_log_0003;
