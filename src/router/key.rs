//! The shard-key scanner: finds the user id ("shard key") a statement concerns in the SQL
//! text itself, in one pass over the bytes, without a parser and without allocating.
//!
//! [`crate::router::scan`] lexes the statement (comments, strings, quoted identifiers, executable
//! comments) and follows just enough structure to know *where* a key column is mentioned:
//! a `WHERE`/`ON`/`HAVING` condition (and there, whether the mention is a top-level
//! conjunct reached only through `AND` and parentheses), an `UPDATE … SET` list, an
//! `INSERT` column list and its `VALUES` rows, or a leading hint comment
//! `/* userid=123 */`. It reports every key occurrence it can prove restricts the
//! statement to that value ([`KeyRef`]), the tables the statement names, the statement
//! kind, the number of `?` placeholders, and — where the key is mentioned in a way it
//! cannot decide — a [`KeyProblem`] whose message tells the user how to fix the query.
//! It never guesses: a key it cannot prove is never reported as an occurrence.
//!
//! Known, documented limits (the router must know them): aliases are not resolved (any
//! `x.userid` matches); a key found in one query block (a subquery, one `UNION` branch)
//! counts for the whole statement; strings follow the default `sql_mode` (backslash
//! escapes, `"…"` is a string, `||` is OR).

use std::fmt;

use super::dialect::{Charset, Dialect};

mod keywords;
mod lexer;
mod scanner;
mod statements;
pub mod words;

pub(super) use keywords::*;
pub(super) use lexer::*;
use scanner::*;
pub use statements::{may_have_shape, shape, Shape};

/// At most this many distinct key occurrences are kept; beyond that the scan reports
/// [`KeyProblem::TooManyKeys`].
pub const MAX_KEYS: usize = 16;
/// At most this many distinct table names are kept; beyond that `tables_truncated` is set.
pub const MAX_TABLES: usize = 8;
/// Nesting depth of parentheses and CASE expressions the scanner follows.
const MAX_DEPTH: usize = 32;
/// Key columns one INSERT column list may name.
pub(super) const MAX_INSERT_KEYS: usize = 4;

/// The configured names of shard-key columns (usually just "userid"), matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumns {
    names: Vec<Box<[u8]>>,
    /// Bit `len` is set when some name has that length (names of 64 bytes or more set bit 63).
    lengths: u64,
}

impl KeyColumns {
    /// Builds the set once at config load (names are trimmed and lower-cased; empty ones dropped).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        let names = names
            .into_iter()
            .map(|n| n.as_ref().trim().to_ascii_lowercase().into_bytes())
            .filter(|n| !n.is_empty())
            .map(Vec::into_boxed_slice)
            .collect::<Vec<_>>();
        let lengths = names.iter().fold(0u64, |m, n| m | 1 << n.len().min(63));
        Self { names, lengths }
    }

    /// Whether `ident` (an unquoted identifier's bytes) is one of the key columns.
    #[inline]
    pub fn contains(&self, ident: &[u8]) -> bool {
        // Most identifiers are rejected by their length alone.
        if self.lengths & (1 << ident.len().min(63)) == 0 {
            return false;
        }
        // The names are lower-cased already.
        self.names.iter().any(|n| {
            n.len() == ident.len()
                && n.iter()
                    .zip(ident)
                    .all(|(&a, &b)| a == b.to_ascii_lowercase())
        })
    }
}

/// A key value as written in the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue<'a> {
    /// An unsigned integer, written `123`, `+123`, `'123'` or `'00123'`.
    Int(u64),
    /// Any other plain string's content (without quotes), or the digits (leading zeros
    /// removed) of an integer too large for u64.
    Str(&'a [u8]),
}

impl KeyValue<'_> {
    /// Canonical bytes that are hashed: decimal ASCII for Int (no sign, no leading zeros), the raw bytes for Str. Writes into `buf`, returns the slice. Never allocates.
    pub fn canonical<'b>(&'b self, buf: &'b mut [u8; 20]) -> &'b [u8] {
        match *self {
            KeyValue::Int(mut n) => {
                // u64::MAX has 20 digits, so `at` never underflows.
                let mut at = buf.len();
                loop {
                    at -= 1;
                    buf[at] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                &buf[at..]
            }
            KeyValue::Str(s) => s,
        }
    }
}

/// One place where the statement fixes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// A literal written in the statement text.
    Literal(KeyValue<'a>),
    /// The 0-based index of the `?` placeholder bound to the key (prepared statements).
    Param(u16),
}

/// Statement kind from its first keyword (after leading comments, whitespace and `(`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, a statement starting with WITH (unless its body is another DML), TABLE, VALUES.
    Select,
    /// INSERT.
    Insert,
    /// REPLACE.
    Replace,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// SET (variables, NAMES, TRANSACTION …).
    Set,
    /// SHOW.
    Show,
    /// USE.
    Use,
    /// BEGIN, START TRANSACTION.
    Begin,
    /// COMMIT.
    Commit,
    /// ROLLBACK (ROLLBACK … TO SAVEPOINT is [`StatementKind::Savepoint`]).
    Rollback,
    /// SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT.
    Savepoint,
    /// CREATE, ALTER, DROP, TRUNCATE, RENAME.
    Ddl,
    /// CALL.
    Call,
    /// DO.
    Do,
    /// LOAD (DATA, XML).
    Load,
    /// LOCK, UNLOCK.
    Lock,
    /// EXPLAIN, DESCRIBE, DESC.
    Explain,
    /// KILL.
    Kill,
    /// Anything else (GRANT, FLUSH, XA, HANDLER, START SLAVE, an empty statement …).
    Other,
}

impl StatementKind {
    /// SET, USE, SHOW and the transaction statements: they read no sharded rows.
    pub fn is_session_control(self) -> bool {
        use StatementKind as K;
        matches!(
            self,
            K::Set | K::Use | K::Show | K::Begin | K::Commit | K::Rollback | K::Savepoint
        )
    }
}

/// Why the scanner cannot decide the key of a statement that mentions a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// The key column is compared with `<`, `>`, `<=`, `>=`, `<>`, `!=`, LIKE, BETWEEN, IS, NOT IN, REGEXP….
    NonEquality,
    /// The key column is compared with an expression, another column or a subquery.
    NotALiteral,
    /// The key value is negative, fractional, hexadecimal, NULL, TRUE/FALSE, DEFAULT or a numeric-looking string.
    UnsupportedLiteral,
    /// `key = value` sits inside NOT, CASE, a function, or is compared again (`(key = 1) = 0`).
    NotConjunct,
    /// A key condition is combined with OR, XOR or `||`.
    OrCondition,
    /// An UPDATE SET list or ON DUPLICATE KEY UPDATE assigns the key column.
    KeyAssignment,
    /// `INSERT … VALUES` without a column list.
    InsertWithoutColumns,
    /// `INSERT … SELECT` (or `… TABLE t`): inserted keys come from another query.
    InsertSelect,
    /// A VALUES row has no value at the key column's position.
    MalformedInsert,
    /// The key value is a string containing a backslash escape or a doubled quote.
    EscapedString,
    /// More than [`MAX_KEYS`] distinct key values (or more than 4 key columns in one INSERT).
    TooManyKeys,
    /// A string, quoted identifier or comment is not closed.
    Unterminated,
    /// A leading comment starts like a key hint (`/* userid = …`) but is not a valid one.
    MalformedHint,
    /// Parentheses or CASE expressions nest deeper than the scanner follows (32 levels).
    TooComplex,
    /// Text that MariaDB may read differently from the scanner (see
    /// [`KeyProblem::message`]); a hint does not lift it.
    Unreadable,
    /// A branch of UNION / INTERSECT / EXCEPT names a table but no key: its rows would
    /// come from one shard only.
    KeylessBranch,
}

impl KeyProblem {
    /// Whether a hint (or the session pin) naming the statement's user makes this
    /// problem harmless: only an undecidable *filter* (a range, an OR, an expression),
    /// as such a statement touches rows of the shard it runs on only; never a problem
    /// with a key the statement writes (INSERT values, a key assignment) or with reading
    /// the text.
    pub fn lifted_by_hint(self, kind: StatementKind) -> bool {
        let writes_key = matches!(kind, StatementKind::Insert | StatementKind::Replace);
        match self {
            KeyProblem::NonEquality
            | KeyProblem::NotALiteral
            | KeyProblem::NotConjunct
            | KeyProblem::OrCondition
            | KeyProblem::TooManyKeys
            | KeyProblem::TooComplex
            | KeyProblem::KeylessBranch => true,
            KeyProblem::UnsupportedLiteral | KeyProblem::EscapedString => !writes_key,
            _ => false,
        }
    }

    /// A user-facing explanation that says how to fix the statement.
    pub fn message(self) -> &'static str {
        match self {
            KeyProblem::NonEquality => {
                "the shard-key column is compared with something other than = or IN \
                 (<, >, <>, LIKE, BETWEEN, IS NULL, NOT IN ...), so the statement may concern \
                 several users: compare it with one value (userid = 123), or add a leading \
                 hint comment /* userid=123 */"
            }
            KeyProblem::NotALiteral => {
                "the shard-key column is compared with an expression, a column or a \
                 subquery: compare it with a literal or a ? placeholder (userid = 123), or \
                 add a leading hint comment /* userid=123 */"
            }
            KeyProblem::UnsupportedLiteral => {
                "the shard-key value must be written as MariaDB stores it: a plain \
                 non-negative integer (123 or '123') no larger than sharding.key_max, or \
                 for a string key a plain string; negative, decimal, hexadecimal, NULL, \
                 TRUE/FALSE, DEFAULT, out-of-range values and strings with spaces, signs, \
                 decimals, exponents or other characters around the digits (' 5', '5.0', \
                 '5abc') cannot be routed"
            }
            KeyProblem::NotConjunct => {
                "the shard-key condition must stand on its own in the WHERE/ON/HAVING \
                 clause, ANDed with the rest (not inside NOT, CASE or a function, and not \
                 compared again): write ... WHERE userid = 123 AND ..., or add a leading \
                 hint comment /* userid=123 */"
            }
            KeyProblem::OrCondition => {
                "the shard-key condition is combined with OR, XOR or ||, which can match \
                 rows of other users: keep OR away from the key (userid = 123 AND (a OR b)), \
                 use userid IN (...) for several values, or add a leading hint comment \
                 /* userid=123 */"
            }
            KeyProblem::KeyAssignment => {
                "the statement assigns the shard-key column (SET userid = ... or ON \
                 DUPLICATE KEY UPDATE userid = ...), which would move rows to another \
                 user's shard: leave the key column out of the assignments"
            }
            KeyProblem::InsertWithoutColumns => {
                "INSERT without a column list: name the columns (INSERT INTO t (userid, \
                 ...) VALUES (...)) so the shard key can be found, or add a leading hint \
                 comment /* userid=123 */"
            }
            KeyProblem::InsertSelect => {
                "INSERT ... SELECT: the shard key of the inserted rows cannot be read from \
                 the statement; add a leading hint comment /* userid=123 */"
            }
            KeyProblem::MalformedInsert => {
                "a VALUES row has no value at the shard-key column's position: give every \
                 row one value per listed column"
            }
            KeyProblem::EscapedString => {
                "the shard-key value is a string with escapes (backslash or doubled quote): \
                 write it plainly or bind it to a ? placeholder"
            }
            KeyProblem::TooManyKeys => {
                "the statement names more than 16 shard-key values: split it into smaller \
                 statements, or add a leading hint comment /* userid=123 */"
            }
            KeyProblem::Unterminated => {
                "the statement has an unterminated string, quoted identifier or comment"
            }
            KeyProblem::MalformedHint => {
                "the leading comment looks like a shard-key hint but is malformed: write \
                 it as /* userid=123 */ or /* userid='abc' */"
            }
            KeyProblem::KeylessBranch => {
                "a branch of this UNION, INTERSECT or EXCEPT reads a table without the \
                 shard key, so it would return one shard's rows only: give every branch its \
                 own userid = … condition, or add a leading hint comment /* userid=123 */"
            }
            KeyProblem::TooComplex => {
                "the statement nests parentheses or CASE expressions more than 32 levels \
                 deep: add a leading hint comment /* userid=123 */"
            }
            KeyProblem::Unreadable => {
                "dbrouter cannot be sure to read this statement exactly as MariaDB will (a \
                 /*!NNNNN */ comment inside another one, a non-ASCII byte outside quotes that is \
                 no letter of the client character set, -- before a non-ASCII byte, a NUL byte in a \
                 comment, a digit after a qualifying dot): rewrite that part (a hint does \
                 not lift this refusal)"
            }
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Everything the scanner learned from one statement.
#[derive(Clone, Copy)]
pub struct Scan<'a> {
    /// Statement kind of the first statement.
    pub kind: StatementKind,
    keys: [KeyRef<'a>; MAX_KEYS],
    pub(super) key_len: u8,
    tables: [&'a [u8]; MAX_TABLES],
    table_len: u8,
    /// More than [`MAX_TABLES`] distinct tables were named; only the first ones are kept.
    pub tables_truncated: bool,
    /// The key comes from a leading hint comment; then `keys()` holds only the hint values and `problem` is None.
    pub from_hint: bool,
    /// Set when the statement mentions a key column in a way that cannot be decided.
    pub problem: Option<KeyProblem>,
    /// Number of `?` placeholders outside strings and comments (for prepared statements).
    pub placeholders: u16,
    /// The text holds more than one statement (`;` followed by another statement).
    pub multi_statement: bool,
    /// `CREATE [OR REPLACE] TEMPORARY …` or `DROP TEMPORARY …`: the table is the session's.
    pub temporary: bool,
}

impl Scan<'_> {
    /// A scan of nothing yet: what [`scan_full_into`] must be given to fill.
    #[inline(always)]
    pub fn empty() -> Self {
        Scan {
            kind: StatementKind::Other,
            keys: [KeyRef::Param(0); MAX_KEYS],
            key_len: 0,
            tables: [&[]; MAX_TABLES],
            table_len: 0,
            tables_truncated: false,
            from_hint: false,
            problem: None,
            placeholders: 0,
            multi_statement: false,
            temporary: false,
        }
    }
}

impl<'a> Scan<'a> {
    /// Back to [`Scan::empty`].
    pub(super) fn clear(&mut self) {
        *self = Scan::empty();
    }

    /// Distinct key occurrences in order of appearance (equal literals are kept once).
    pub fn keys(&self) -> &[KeyRef<'a>] {
        self.keys
            .get(..usize::from(self.key_len))
            .unwrap_or_default()
    }

    /// Distinct table names in order of appearance: last part of `db.t`, backticks removed, case as written.
    pub fn tables(&self) -> &[&'a [u8]] {
        self.tables
            .get(..usize::from(self.table_len))
            .unwrap_or_default()
    }

    pub(super) fn push_key(&mut self, key: KeyRef<'a>) -> Result<(), KeyProblem> {
        if self.keys().contains(&key) {
            return Ok(());
        }
        match self.keys.get_mut(usize::from(self.key_len)) {
            Some(slot) => {
                *slot = key;
                self.key_len += 1;
                Ok(())
            }
            None => Err(KeyProblem::TooManyKeys),
        }
    }

    pub(super) fn push_table(&mut self, name: &'a [u8]) {
        if name.is_empty() || self.tables().contains(&name) {
            return;
        }
        match self.tables.get_mut(usize::from(self.table_len)) {
            Some(slot) => {
                *slot = name;
                self.table_len += 1;
            }
            None => self.tables_truncated = true,
        }
    }
}

impl fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Tables<'x, 'a>(&'x [&'a [u8]]);
        impl fmt::Debug for Tables<'_, '_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|t| String::from_utf8_lossy(t)))
                    .finish()
            }
        }
        f.debug_struct("Scan")
            .field("kind", &self.kind)
            .field("keys", &self.keys())
            .field("tables", &Tables(self.tables()))
            .field("tables_truncated", &self.tables_truncated)
            .field("from_hint", &self.from_hint)
            .field("problem", &self.problem)
            .field("placeholders", &self.placeholders)
            .field("multi_statement", &self.multi_statement)
            .field("temporary", &self.temporary)
            .finish()
    }
}

/// Same result, field by field (for the fast path's differential tests).
#[cfg(test)]
impl PartialEq for Scan<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.keys() == other.keys()
            && self.tables() == other.tables()
            && self.tables_truncated == other.tables_truncated
            && self.from_hint == other.from_hint
            && self.problem == other.problem
            && self.placeholders == other.placeholders
            && self.multi_statement == other.multi_statement
            && self.temporary == other.temporary
    }
}

/// The full scanner, without the fast path (statements shorter than 4 GiB).
#[cfg(test)]
pub(super) fn scan_full<'a>(sql: &'a [u8], columns: &KeyColumns) -> Scan<'a> {
    let mut out = Scan::empty();
    scan_full_into(sql, Dialect::default(), columns, &mut out);
    out
}

/// The full scanner into `out` (see [`crate::router::scan_in`], which tries the fast path
/// first).
pub fn scan_full_into<'a>(
    sql: &'a [u8],
    dialect: Dialect,
    columns: &KeyColumns,
    out: &mut Scan<'a>,
) {
    // Built in place: the frame stack and the result are large enough that copying them
    // would cost more than scanning a short statement.
    let mut frames = [Frame::ZERO; MAX_DEPTH];
    let mut scanner = Scanner::new(sql, dialect, columns, out, &mut frames);
    scanner.leading_hints();
    scanner.run();
    scanner.finish();
}

// ---------------------------------------------------------------------------------------
// Literal values.

/// A non-empty run of ASCII digits as a key: Int, or Str of the digits when beyond u64.
pub(super) fn digits_value(d: &[u8]) -> KeyValue<'_> {
    let zeros = d.iter().take_while(|&&c| c == b'0').count();
    let d = d.get(zeros..).unwrap_or_default();
    if d.len() <= 19 {
        // Below 10^19 < u64::MAX: no overflow.
        let v = d
            .iter()
            .fold(0u64, |v, &c| v * 10 + u64::from(c.wrapping_sub(b'0')));
        return KeyValue::Int(v);
    }
    let mut v: u64 = 0;
    for &c in d {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
        {
            Some(n) => v = n,
            None => return KeyValue::Str(d),
        }
    }
    KeyValue::Int(v)
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

fn number_value(n: &[u8]) -> Result<KeyValue<'_>, KeyProblem> {
    if all_digits(n) {
        Ok(digits_value(n))
    } else {
        Err(KeyProblem::UnsupportedLiteral)
    }
}

/// Whether a string would compare equal to a different number than its text: `-5`, `+5`,
/// `5.0`, `.5`, `1e3`.
pub(super) fn numeric_text(s: &[u8]) -> bool {
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let mut digits = 0;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
        digits += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let before = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == before {
            return false;
        }
    }
    i == s.len()
}

pub(super) fn string_value(s: &[u8], escaped: bool) -> Result<KeyValue<'_>, KeyProblem> {
    if escaped {
        return Err(KeyProblem::EscapedString);
    }
    if all_digits(s) {
        return Ok(digits_value(s));
    }
    let spaced = |c: Option<&u8>| c.is_some_and(u8::is_ascii_whitespace);
    if spaced(s.first()) || spaced(s.last()) || numeric_text(s) {
        return Err(KeyProblem::UnsupportedLiteral);
    }
    Ok(KeyValue::Str(s))
}

/// What stands on the other side of `key =`.
enum Val<'a> {
    Key(KeyRef<'a>),
    Bad(KeyProblem),
    /// Another key column (`a.userid = b.userid`): a join condition, neither key nor problem.
    KeyCol,
    NotLiteral,
}

impl<'a> From<Result<KeyValue<'a>, KeyProblem>> for Val<'a> {
    fn from(r: Result<KeyValue<'a>, KeyProblem>) -> Self {
        match r {
            Ok(v) => Val::Key(KeyRef::Literal(v)),
            Err(p) => Val::Bad(p),
        }
    }
}

/// Reads one value; `param` is the index a `?` here would have.
fn read_value<'a>(s: &mut Lexer<'a>, param: u16, cols: &KeyColumns) -> Val<'a> {
    match s.next() {
        T::Num(n) => number_value(s.text(n)).into(),
        T::Str(c, e) => string_value(s.text(c), e).into(),
        T::Param => Val::Key(KeyRef::Param(param)),
        T::Op(Op::Plus) => match s.next() {
            T::Num(n) => number_value(s.text(n)).into(),
            _ => Val::NotLiteral,
        },
        T::Op(Op::Minus) => match s.next() {
            T::Num(_) => Val::Bad(KeyProblem::UnsupportedLiteral),
            _ => Val::NotLiteral,
        },
        T::Kw(Kw::Null | Kw::True | Kw::False | Kw::Default, _) => {
            Val::Bad(KeyProblem::UnsupportedLiteral)
        }
        T::Name(n) if cols.contains(s.text(n)) && s.peek_next() != T::Op(Op::LParen) => Val::KeyCol,
        _ => Val::NotLiteral,
    }
}

/// Reads `v1, v2, …)` after `IN (`, calling `found` for each value. On success returns the
/// stream after the `)`.
fn in_values<'a>(
    mut s: Lexer<'a>,
    mut param: u16,
    cols: &KeyColumns,
    mut found: impl FnMut(KeyRef<'a>),
) -> Result<Lexer<'a>, KeyProblem> {
    loop {
        match read_value(&mut s, param, cols) {
            Val::Key(k) => {
                if let KeyRef::Param(_) = k {
                    param = param.saturating_add(1);
                }
                found(k);
            }
            Val::Bad(p) => return Err(p),
            Val::KeyCol | Val::NotLiteral => return Err(KeyProblem::NotALiteral),
        }
        match s.next() {
            T::Op(Op::Comma) => {}
            T::Op(Op::RParen) => return Ok(s),
            _ => return Err(KeyProblem::NotALiteral),
        }
    }
}

/// Whether `t` may follow a complete `key = value` conjunct.
fn cond_boundary(t: T, comma_ends: bool) -> bool {
    match t {
        T::End | T::Bad | T::Op(Op::Semi | Op::RParen | Op::AndAnd | Op::OrOr) => true,
        T::Op(Op::Comma) => comma_ends,
        T::Kw(k, _) => matches!(
            k,
            Kw::And
                | Kw::Or
                | Kw::Xor
                | Kw::Order
                | Kw::Group
                | Kw::Having
                | Kw::Limit
                | Kw::For
                | Kw::Lock
                | Kw::Union
                | Kw::Intersect
                | Kw::Except
                | Kw::Window
                | Kw::Into
                | Kw::Procedure
                | Kw::Returning
                | Kw::Join
                | Kw::Inner
                | Kw::Cross
                | Kw::Left
                | Kw::Right
                | Kw::Natural
                | Kw::StraightJoin
                | Kw::Where
                | Kw::Set
                | Kw::Fetch
        ),
        _ => false,
    }
}

/// What the content of a leading `/* … */` comment says.
pub(super) enum Hint<'a> {
    /// An ordinary comment.
    Comment,
    /// A valid key hint.
    Key(KeyValue<'a>),
    /// Starts like a hint (`userid =`) and then goes wrong: a mistake, reported.
    Malformed,
}

/// `<keycol> = <value>` with optional spaces; anything else is not a hint, except a
/// comment that starts like one (`userid =`) and then goes wrong: that is a mistake.
pub(super) fn parse_hint<'a>(c: &'a [u8], cols: &KeyColumns) -> Hint<'a> {
    let c = c.trim_ascii();
    let n = c.iter().take_while(|&&b| is_ident(b)).count();
    let (name, rest) = c.split_at(n);
    if n == 0 || !cols.contains(name) {
        return Hint::Comment;
    }
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b"=") else {
        return Hint::Comment;
    };
    let v = rest.trim_ascii();
    let value = match v.first() {
        Some(b'0'..=b'9') if all_digits(v) => Ok(digits_value(v)),
        Some(&q @ (b'\'' | b'"')) if v.len() >= 2 && v.last() == Some(&q) => {
            let inner = v.get(1..v.len() - 1).unwrap_or_default();
            if inner.contains(&q) {
                Err(KeyProblem::MalformedHint)
            } else {
                string_value(inner, inner.contains(&b'\\'))
            }
        }
        _ => Err(KeyProblem::MalformedHint),
    };
    match value {
        Ok(v) => Hint::Key(v),
        Err(_) => Hint::Malformed,
    }
}

#[cfg(test)]
mod tests;
