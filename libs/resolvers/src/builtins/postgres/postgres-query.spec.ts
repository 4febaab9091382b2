import { describe, expect, it } from 'vitest';
import { checkKeysQuery } from './postgres-query.js';

describe(checkKeysQuery.name, () => {
  it('accepts one statement using $1, with a trailing semicolon and comments', () => {
    for (const sql of [
      'select user_id as key, approval_limit from approvers where user_id = any($1)',
      'select id as key from t where id = any($1);',
      'select id as key from t where id = any($1) ; -- the end\n/* really */',
      "select id as key, 'a;b $2' as s, \"odd;$3\" from t where id = any($1)",
      "select id as key, E'it\\'s; $2' as s from t where id = any($1)",
      'select id as key, $fn$ body; $2 $fn$ as s, $$;$$ from t where id = any($1)',
      'select id as key from t /* nested /* $2; */ still */ where id = any($1)',
      'select a$2 as key from t where a$2 = any($1)',
      "select id as key from t where id = any($1) and note <> 'it''s; fine'",
    ]) {
      expect(checkKeysQuery(sql), sql).toBeUndefined();
    }
  });

  it('refuses other parameters, several statements and unterminated text', () => {
    expect(checkKeysQuery('')).toBe('expected a non-empty SQL query');
    expect(checkKeysQuery('select 1 as key')).toBe('expected `$1` (the list of keys), as in `where id = any($1)`');
    expect(checkKeysQuery("select '$1' as key")).toBe('expected `$1` (the list of keys), as in `where id = any($1)`');
    expect(checkKeysQuery('select $1 as key, $3, $2')).toBe('only `$1` (the list of keys) is available, found `$2`');
    expect(checkKeysQuery('select $10 as key')).toContain('found `$10`');
    expect(checkKeysQuery('select $1 as key; delete from t')).toBe('expected one statement (found more SQL after `;`)');
    expect(checkKeysQuery('select $1 as key;;')).toBe('expected one statement (found more SQL after `;`)');
    expect(checkKeysQuery("select $1 as key, 'open")).toBe('unterminated string literal');
    expect(checkKeysQuery("select $1 as key, E'open\\'")).toBe('unterminated string literal');
    expect(checkKeysQuery('select $1 as key, "open')).toBe('unterminated quoted identifier');
    expect(checkKeysQuery('select $1 as key, $x$ open')).toBe('unterminated dollar-quoted string');
    expect(checkKeysQuery('select $1 as key /* open')).toBe('unterminated comment');
    expect(checkKeysQuery(`select $1 as key ${'x'.repeat(100_001)}`)).toBe('expected at most 100000 characters');
  });
});
