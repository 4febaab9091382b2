-- Demo data for the embedded defaults (warden.yaml `database.seedFiles`); runs at every start,
-- so every statement is idempotent. Not a migration: production databases never get these tables.
create table if not exists demo_tools (
  id     text primary key,
  risk   text not null,
  tenant text not null,
  owner  text
);
insert into demo_tools (id, risk, tenant, owner) values
  ('web_search',        'low',      'acme', null),
  ('crm_lookup',        'medium',   'acme', null),
  ('issue_refund',      'high',     'acme', null),
  ('shell_exec',        'critical', 'acme', null),
  ('lookup_order',      'medium',   'acme', null),
  ('create_ticket',     'medium',   'acme', null),
  ('edit_project_plan', 'high',     'acme', null)
on conflict (id) do nothing;
-- Projects and the team that owns each (scenario 4).
create table if not exists demo_projects (
  id             text primary key,
  owning_team_id text not null
);
insert into demo_projects (id, owning_team_id) values ('apollo', 'team-apollo'), ('zeus', 'team-zeus')
on conflict (id) do nothing;
create table if not exists demo_approvers (
  user_id        text primary key,
  approval_limit integer not null
);
insert into demo_approvers (user_id, approval_limit) values ('carol', 1000), ('ray', 500)
on conflict (user_id) do nothing;
