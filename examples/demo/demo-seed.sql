-- Demo data for the embedded defaults (warden.yaml `database.seedFiles`); runs at every start,
-- so every statement is idempotent. Not a migration: production databases never get these tables.
create table if not exists demo_tools (
  id     text primary key,
  risk   text not null,
  tenant text not null,
  owner  text
);
insert into demo_tools (id, risk, tenant, owner) values
  ('web_search',   'low',      'acme', null),
  ('crm_lookup',   'medium',   'acme', null),
  ('issue_refund', 'high',     'acme', null),
  ('shell_exec',   'critical', 'acme', null)
on conflict (id) do nothing;
create table if not exists demo_approvers (
  user_id        text primary key,
  approval_limit integer not null
);
insert into demo_approvers (user_id, approval_limit) values ('carol', 1000)
on conflict (user_id) do nothing;
