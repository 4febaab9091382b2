-- Admin-registered resolver configs (issue 3): an append-only history per resolver name.
-- The current set is, per name, the latest revision whose config is not null (null = deleted).
create table if not exists warden_resolver_revisions (
  revision   bigserial   primary key,
  name       text        not null,
  version    integer     not null check (version > 0),
  action     text        not null check (action in ('create', 'replace', 'delete', 'rollback')),
  config     jsonb,
  actor      text        not null,
  created_at timestamptz not null default now(),
  unique (name, version)
);
