-- Delegation (issue 4): Warden's signing keys, the delegations it minted, and revocations.

-- Signing keys shared by every instance when none are configured: the first instance to start
-- creates one. SECURITY: private keys; the table is as sensitive as the configured key file.
create table if not exists warden_delegation_keys (
  kid        text        primary key,
  alg        text        not null check (alg in ('ES256', 'EdDSA')),
  jwk        jsonb       not null,
  created_at timestamptz not null default now()
);

-- Every delegation minted: who delegated what to whom, under which parent (revocation rights, audit).
create table if not exists warden_delegations (
  id         text        primary key,
  subject    text        not null,
  session    text,
  from_id    text        not null,
  to_agent   text        not null,
  parent_id  text,
  ancestors  text[]      not null,
  grants     jsonb       not null,
  task       text,
  issued_at  timestamptz not null,
  expires_at timestamptz not null
);
create index if not exists warden_delegations_subject on warden_delegations (subject);

-- Revocations, numbered; each instance applies them in order. One entry per (target, id).
create table if not exists warden_revocations (
  seq        bigserial   primary key,
  target     text        not null check (target in ('delegation', 'session', 'agent', 'subject')),
  id         text        not null,
  revoked_by text        not null,
  reason     text,
  revoked_at timestamptz not null default now(),
  unique (target, id)
);
