//! The shard-key scanner: finds the user id ("shard key") a statement concerns in the SQL
//! text itself, in one pass over the bytes, without a parser and without allocating.
//!
//! [`scan`] lexes the statement (comments, strings, quoted identifiers, executable
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

mod statements;
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
                 /*!NNNNN */ comment inside another one, a non-ASCII byte outside quotes in a \
                 character set other than UTF-8, -- before a non-ASCII byte, a NUL byte in a \
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
    #[inline(always)]
    pub(super) fn empty() -> Self {
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
    fn clear(&mut self) {
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

/// Scans one statement as MariaDB reads it by default (see [`scan_in`]).
pub fn scan<'a>(sql: &'a [u8], columns: &KeyColumns) -> Scan<'a> {
    scan_in(sql, Dialect::default(), columns)
}

/// Scans one statement as MariaDB reads it on a connection of this dialect.
pub fn scan_in<'a>(sql: &'a [u8], dialect: Dialect, columns: &KeyColumns) -> Scan<'a> {
    // Built in place (the result is ~0.5 KB), in the one variable returned.
    let mut out = Scan::empty();
    if u32::try_from(sql.len()).is_err() {
        // Token positions are u32; MySQL packets stay far below 4 GiB anyway.
        out.problem = Some(KeyProblem::TooComplex);
        return out;
    }
    // The fast path reads ASCII outside quotes, strings without backslashes and no
    // comment but a leading `/* */`: the same under every dialect except ANSI_QUOTES.
    if dialect.ansi_quotes || super::fast::scan_into(sql, columns, &mut out).is_none() {
        // Not one of the common simple shapes: the full scanner starts over.
        out.clear();
        scan_full_into(sql, dialect, columns, &mut out);
    }
    out
}

/// The full scanner, without the fast path (statements shorter than 4 GiB).
#[cfg(test)]
pub(super) fn scan_full<'a>(sql: &'a [u8], columns: &KeyColumns) -> Scan<'a> {
    let mut out = Scan::empty();
    scan_full_into(sql, Dialect::default(), columns, &mut out);
    out
}

fn scan_full_into<'a>(sql: &'a [u8], dialect: Dialect, columns: &KeyColumns, out: &mut Scan<'a>) {
    // Built in place: the frame stack and the result are large enough that copying them
    // would cost more than scanning a short statement.
    let mut frames = [Frame::ZERO; MAX_DEPTH];
    let mut scanner = Scanner::new(sql, dialect, columns, out, &mut frames);
    scanner.leading_hints();
    scanner.run();
    scanner.finish();
}

// ---------------------------------------------------------------------------------------
// Lexer: tokens with comments and whitespace skipped, keywords classified, qualified names
// `a.b.c` reduced to their last part. Tokens carry byte ranges (12 bytes in all) so they
// travel in registers; the text is sliced only when needed.

const fn ident_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        i += 1;
    }
    t
}

/// Bytes that may appear in an unquoted identifier (multi-byte UTF-8 included).
pub(super) static IDENT: [bool; 256] = ident_table();

const C_OTHER: u8 = 0;
/// Starts an identifier or keyword: an identifier byte that is not a digit, or a backtick.
const C_WORD: u8 = 1;

const fn class_table() -> [u8; 256] {
    let mut t = [C_OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if (IDENT[i] && !b.is_ascii_digit()) || b == b'`' {
            t[i] = C_WORD;
        }
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

#[inline(always)]
pub(super) fn is_ident(b: u8) -> bool {
    IDENT[usize::from(b)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    LParen,
    RParen,
    Comma,
    Semi,
    Eq,
    NullEq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    OrOr,
    AndAnd,
    Assign,
    Plus,
    Minus,
    Other,
}

/// A byte range of the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum T {
    Kw(Kw, Span),
    /// An identifier (unquoted non-keyword, or backticked without the backticks);
    /// a qualified name `a.b.c` is reduced to its last part.
    Name(Span),
    /// String content and whether it holds an escape (backslash or doubled quote).
    Str(Span, bool),
    Num(Span),
    Param,
    Var,
    Op(Op),
    End,
    /// An unterminated string, quoted identifier or comment: the end of the scan.
    Bad,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Lexer<'a> {
    pub(super) s: &'a [u8],
    pub(super) pos: usize,
    /// Inside `/*! … */` or `/*M! … */` that MariaDB executes: its content is SQL.
    pub(super) exec: bool,
    /// How MariaDB reads this statement's bytes on the connection that runs it.
    pub(super) dialect: Dialect,
    /// Why the last [`T::Bad`] was returned.
    pub(super) bad: KeyProblem,
}

/// The index of the first byte above ASCII space at or after `i`, and that byte (None at
/// the end of the statement). Shared by both lexers.
#[inline(always)]
pub(super) fn skip_spaces(s: &[u8], mut i: usize) -> (usize, Option<u8>) {
    loop {
        match s.get(i) {
            Some(&b) if b <= b' ' => i += 1,
            other => return (i, other.copied()),
        }
    }
}

/// Index just past the `*/` closing a comment whose content starts at `from`.
pub(super) fn comment_end(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&c) = s.get(i) {
        if c == b'*' && s.get(i + 1) == Some(&b'/') {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// Index just past the `*/` closing a version comment that MariaDB skips: its body may
/// hold one level of nested `/* … */` (MariaDB's `consume_comment(lip, 1)`).
fn skipped_version_comment_end(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&c) = s.get(i) {
        if c == b'/' && s.get(i + 1) == Some(&b'*') {
            i = comment_end(s, i + 2)?;
            continue;
        }
        if c == b'*' && s.get(i + 1) == Some(&b'/') {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// What a `-` at `i` that is followed by another `-` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dash {
    /// A comment to the end of the line.
    Comment,
    /// Two minus signs.
    Minus,
    /// A byte whose class (space or control) depends on the character set: unreadable.
    Unsure,
}

/// Whether a `--` at `i` starts a comment: MariaDB wants a space or a control byte after
/// it (`my_isspace || my_iscntrl`), which for bytes of 0x80 and above depends on the
/// character set.
pub(super) fn dash_comment(s: &[u8], i: usize) -> Dash {
    if s.get(i + 1) != Some(&b'-') {
        return Dash::Minus;
    }
    match s.get(i + 2) {
        None => Dash::Comment,
        Some(&c) if c <= b' ' || c == 0x7F => Dash::Comment,
        Some(&c) if c >= 0x80 => Dash::Unsure,
        Some(_) => Dash::Minus,
    }
}

/// Index just past the newline ending a line comment that starts at `i` (the end of the
/// statement if none), or `i` itself when the line holds a NUL byte before its end.
fn line_end(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&c| c == b'\n')
        .map_or(rest.len(), |n| n + 1);
    if rest.get(..len).unwrap_or_default().contains(&0) {
        i
    } else {
        i + len
    }
}

#[inline(always)]
pub(super) fn span(start: usize, end: usize) -> Span {
    // `scan` refuses statements of 4 GiB or more, so positions fit in u32.
    Span {
        start: start as u32,
        end: end as u32,
    }
}

impl Span {
    /// The bytes of `s` this span covers (empty if it does not fit: never for spans
    /// made over `s`).
    #[inline(always)]
    pub(super) fn of(self, s: &[u8]) -> &[u8] {
        s.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `s`.
    pub(super) fn new(s: &'a [u8], dialect: Dialect) -> Self {
        Lexer {
            s,
            pos: 0,
            exec: false,
            dialect,
            bad: KeyProblem::Unterminated,
        }
    }

    #[inline(always)]
    fn text(&self, sp: Span) -> &'a [u8] {
        sp.of(self.s)
    }

    /// An unterminated string, quoted identifier or comment: the end.
    fn fail(&mut self) -> T {
        self.pos = self.s.len();
        self.exec = false;
        T::Bad
    }

    /// Text that MariaDB may read differently from this lexer: the end.
    #[cold]
    fn unreadable(&mut self) -> T {
        self.bad = KeyProblem::Unreadable;
        self.fail()
    }

    /// Skips a `#` or `--` comment. MariaDB ends it at a newline or a NUL byte (what
    /// follows a NUL is code to it): a NUL makes the statement unreadable.
    fn skip_line(&mut self) -> Result<(), T> {
        let s = self.s;
        while let Some(&c) = s.get(self.pos) {
            self.pos += 1;
            match c {
                b'\n' => break,
                0 => return Err(self.unreadable()),
                _ => {}
            }
        }
        Ok(())
    }

    /// A `/*!` (marker 3) or `/*M!` (marker 4) at `self.pos`. With five or six digits it
    /// is a version comment: code when the version is at most the server's and, for plain
    /// `/*!`, outside MySQL 5.7's range 50700–99999; else skipped as a comment. Without
    /// five digits its whole content (digits included) is code.
    fn version_comment(&mut self, marker: usize) -> Result<(), T> {
        if self.exec {
            // Nested in another executed comment: MariaDB's handling is not ours to guess.
            return Err(self.unreadable());
        }
        let s = self.s;
        let body = self.pos + marker;
        let digits = s
            .get(body..)
            .unwrap_or_default()
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits < 5 {
            self.pos = body;
            self.exec = true;
            return Ok(());
        }
        let version = s
            .get(body..body + digits)
            .unwrap_or_default()
            .iter()
            .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        let maria = marker == 4;
        let server = self.dialect.version;
        if server == 0 {
            return Err(self.unreadable());
        }
        if version <= server && (!(50700..=99999).contains(&version) || maria) {
            self.pos = body + digits;
            self.exec = true;
            return Ok(());
        }
        match skipped_version_comment_end(s, body) {
            Some(end) => {
                self.pos = end;
                Ok(())
            }
            None => Err(self.fail()),
        }
    }

    /// Skips whitespace and comments up to the next token; returns its first byte (None
    /// at the end), or the token to return at once (`Bad`).
    #[inline(always)]
    fn trivia(&mut self) -> Result<Option<u8>, T> {
        let s = self.s;
        loop {
            let (pos, b) = skip_spaces(s, self.pos);
            self.pos = pos;
            let Some(b) = b else {
                return if self.exec {
                    Err(self.fail())
                } else {
                    Ok(None)
                };
            };
            match b {
                b'#' => self.skip_line()?,
                b'-' => match dash_comment(s, pos) {
                    Dash::Comment => self.skip_line()?,
                    Dash::Minus => return Ok(Some(b)),
                    Dash::Unsure => return Err(self.unreadable()),
                },
                b'/' if s.get(pos + 1) == Some(&b'*') => match s.get(pos + 2) {
                    Some(b'!') => self.version_comment(3)?,
                    Some(b'M') if s.get(pos + 3) == Some(&b'!') => self.version_comment(4)?,
                    _ if self.exec => return Err(self.unreadable()),
                    _ => match comment_end(s, pos + 2) {
                        Some(end) => self.pos = end,
                        None => return Err(self.fail()),
                    },
                },
                b'*' if self.exec && s.get(pos + 1) == Some(&b'/') => {
                    self.exec = false;
                    self.pos += 2;
                }
                _ => return Ok(Some(b)),
            }
        }
    }

    /// The next token, out of line: for look-ahead from the scanner's rarer paths.
    #[inline(never)]
    fn peek_next(mut self) -> T {
        self.next()
    }

    #[inline(always)]
    pub(super) fn next(&mut self) -> T {
        // Whitespace and identifiers first: they are most of the bytes.
        let (pos, b) = skip_spaces(self.s, self.pos);
        self.pos = pos;
        if let Some(b) = b {
            if CLASS[usize::from(b)] == C_WORD {
                return self.word();
            }
        }
        let b = match self.trivia() {
            Ok(Some(b)) => b,
            Ok(None) => return T::End,
            Err(t) => return t,
        };
        match b {
            _ if CLASS[usize::from(b)] == C_WORD => self.word(),
            b'"' if self.dialect.ansi_quotes => self.word(),
            b'\'' | b'"' => match self.quoted(b) {
                Some((sp, escaped)) => T::Str(sp, escaped),
                None => self.fail(),
            },
            b'0'..=b'9' => self.number(),
            b'?' => {
                self.pos += 1;
                T::Param
            }
            b'@' => self.variable(),
            _ => self.op(b),
        }
    }

    /// Content of a quoted string or identifier starting at `self.pos`, and whether it
    /// holds an escape; None when it is not closed. Backslashes escape only in strings and
    /// only without NO_BACKSLASH_ESCAPES; in sjis/cp932/gbk/big5 a lead byte and its
    /// trail byte are one character (the trail may be a backslash or a quote character).
    #[inline]
    fn quoted(&mut self, q: u8) -> Option<(Span, bool)> {
        let s = self.s;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let string = q == b'\'' || (q == b'"' && !self.dialect.ansi_quotes);
        let backslash = string && self.dialect.backslash_escapes;
        let mb = match self.dialect.charset {
            Charset::AsciiTrail(table) => Some(table),
            _ => None,
        };
        while let Some(&c) = s.get(i) {
            if c == q {
                if s.get(i + 1) == Some(&q) {
                    escaped = true;
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                return Some((span(start, i), escaped));
            }
            if c == b'\\' && backslash {
                escaped = true;
                i += 2;
                continue;
            }
            if c >= 0x80 {
                if let Some(table) = mb {
                    i += table.char_len(c, s.get(i + 1).copied());
                    continue;
                }
            }
            i += 1;
        }
        None
    }

    /// One part of an identifier: unquoted, backticked or (ANSI_QUOTES) double-quoted.
    /// Non-ASCII bytes outside quotes are identifier bytes only in UTF-8 (and only as
    /// valid UTF-8); in other character sets they may be whitespace to MariaDB.
    #[inline(always)]
    fn ident_part(&mut self) -> Result<(Span, bool), T> {
        let s = self.s;
        match s.get(self.pos) {
            Some(&q @ b'`') => return self.quoted(q).map(|(sp, _)| (sp, true)).ok_or(T::Bad),
            Some(&q @ b'"') if self.dialect.ansi_quotes => {
                return self.quoted(q).map(|(sp, _)| (sp, true)).ok_or(T::Bad)
            }
            _ => {}
        }
        let start = self.pos;
        let rest = s.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .skip(1)
            .position(|&c| !is_ident(c))
            .map_or(rest.len(), |n| n + 1);
        let end = start + len;
        let part = s.get(start..end).unwrap_or_default();
        if !part.is_ascii() {
            let readable =
                self.dialect.charset == Charset::Utf8 && std::str::from_utf8(part).is_ok();
            if !readable {
                return Err(self.unreadable());
            }
        }
        self.pos = end;
        Ok((span(start, end), false))
    }

    /// Whether a qualifying `.` and an identifier follow (across whitespace and comments,
    /// as MariaDB's grammar allows: `a . b`, `a/**/.b`); if so, moves to that identifier.
    /// `t.*` is not qualifying; a digit right after the dot starts an identifier
    /// (`t.1x`), a digit after whitespace or a comment makes the statement unreadable.
    #[inline(always)]
    fn qualifying_dot(&mut self) -> Result<bool, T> {
        let s = self.s;
        let mut ahead = *self;
        if s.get(self.pos) == Some(&b'.') {
            ahead.pos += 1;
        } else {
            let (after, b) = skip_spaces(s, self.pos);
            if !matches!(b, Some(b'.' | b'/' | b'#' | b'-' | b'*')) {
                // The next token starts there: spare it skipping the spaces again.
                self.pos = after;
                return Ok(false);
            }
            // A broken comment ahead is the next token's to report.
            match ahead.trivia() {
                Ok(Some(b'.')) => ahead.pos += 1,
                _ => return Ok(false),
            }
        }
        // Directly after the dot MariaDB reads any identifier characters as a name,
        // digits first included (`t.1x`, `t.5` are columns).
        let adjacent = ahead.pos == self.pos + 1;
        if adjacent && s.get(ahead.pos).is_some_and(|c| c.is_ascii_digit()) {
            *self = ahead;
            return Ok(true);
        }
        let next = match s.get(ahead.pos) {
            Some(&c) if c > b' ' && c != b'/' && c != b'#' && c != b'-' => Some(c),
            _ => match ahead.trivia() {
                Ok(next) => next,
                Err(_) => return Err(self.unreadable()),
            },
        };
        match next {
            Some(c) if c.is_ascii_digit() => Err(self.unreadable()),
            Some(c) if is_ident(c) || c == b'`' || (c == b'"' && self.dialect.ansi_quotes) => {
                *self = ahead;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// An identifier or keyword; a qualified name `a.b.c` (with or without whitespace or
    /// comments around the dots) becomes its last part.
    #[inline(always)]
    fn word(&mut self) -> T {
        let (mut sp, quoted) = match self.ident_part() {
            Ok(part) => part,
            Err(_) if self.bad == KeyProblem::Unreadable => return T::Bad,
            Err(_) => return self.fail(),
        };
        // A qualified last part is never a keyword (`t.order` is a column). A keyword is
        // a qualifier only when a dot and an identifier character follow it directly
        // (`where.x` is a name, `WHERE .x` the keyword): MariaDB looks a word up as a
        // keyword unless that is so.
        let kw = if quoted { None } else { keyword(self.text(sp)) };
        if let Some(k) = kw {
            let adjacent = self.s.get(self.pos) == Some(&b'.')
                && self.s.get(self.pos + 1).is_some_and(|&c| is_ident(c));
            if !adjacent {
                return T::Kw(k, sp);
            }
        }
        let mut qualified = false;
        loop {
            match self.qualifying_dot() {
                Ok(true) => {}
                Ok(false) => break,
                Err(t) => return t,
            }
            match self.ident_part() {
                Ok((part, _)) => {
                    sp = part;
                    qualified = true;
                }
                Err(_) if self.bad == KeyProblem::Unreadable => return T::Bad,
                Err(_) => return self.fail(),
            }
        }
        match kw {
            Some(k) if !qualified => T::Kw(k, sp),
            _ => T::Name(sp),
        }
    }

    fn number(&mut self) -> T {
        let s = self.s;
        let start = self.pos;
        let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
        let mut i = start;
        while digit(i) {
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            let j = if matches!(s.get(i + 1), Some(b'+' | b'-')) {
                i + 2
            } else {
                i + 1
            };
            if digit(j) {
                i = j;
                while digit(i) {
                    i += 1;
                }
            }
        }
        // 0x1F, 0b101, 1abc (an identifier starting with digits): one odd "number".
        while s.get(i).is_some_and(|&c| is_ident(c)) {
            i += 1;
        }
        self.pos = i;
        T::Num(span(start, i))
    }

    /// `@name`, `@@name`, `@@session.name`, `@'quoted'`: never a column.
    fn variable(&mut self) -> T {
        let s = self.s;
        let mut i = self.pos + 1;
        if s.get(i) == Some(&b'@') {
            i += 1;
        }
        if let Some(&q @ (b'\'' | b'"' | b'`')) = s.get(i) {
            self.pos = i;
            return match self.quoted(q) {
                Some(_) => T::Var,
                None => self.fail(),
            };
        }
        while s.get(i).is_some_and(|&c| is_ident(c) || c == b'.') {
            i += 1;
        }
        self.pos = i;
        T::Var
    }

    fn op(&mut self, b: u8) -> T {
        let s = self.s;
        let n1 = s.get(self.pos + 1).copied();
        let n2 = s.get(self.pos + 2).copied();
        let (op, len) = match b {
            b'(' => (Op::LParen, 1),
            b')' => (Op::RParen, 1),
            b',' => (Op::Comma, 1),
            b';' => (Op::Semi, 1),
            b'=' => (Op::Eq, 1),
            b'<' => match (n1, n2) {
                (Some(b'='), Some(b'>')) => (Op::NullEq, 3),
                (Some(b'='), _) => (Op::Le, 2),
                (Some(b'>'), _) => (Op::Ne, 2),
                (Some(b'<'), _) => (Op::Other, 2),
                _ => (Op::Lt, 1),
            },
            b'>' => match n1 {
                Some(b'=') => (Op::Ge, 2),
                Some(b'>') => (Op::Other, 2),
                _ => (Op::Gt, 1),
            },
            b'!' if n1 == Some(b'=') => (Op::Ne, 2),
            b'|' if n1 == Some(b'|') => (Op::OrOr, 2),
            b'&' if n1 == Some(b'&') => (Op::AndAnd, 2),
            b':' if n1 == Some(b'=') => (Op::Assign, 2),
            b'+' => (Op::Plus, 1),
            b'-' => match (n1, n2) {
                (Some(b'>'), Some(b'>')) => (Op::Other, 3),
                (Some(b'>'), _) => (Op::Other, 2),
                _ => (Op::Minus, 1),
            },
            _ => (Op::Other, 1),
        };
        self.pos += len;
        T::Op(op)
    }
}

// ---------------------------------------------------------------------------------------
// Keywords: the words the scanner follows, found through a collision-free multiplicative
// hash of (first two bytes, last two bytes, length) into a 512-entry table, then confirmed
// by a case-insensitive comparison (`| 0x20` folds ASCII case and maps no other identifier
// byte to a letter). A unit test checks that every keyword is found.

const KW_HASH_BITS: u32 = 9;
const KW_HASH_MUL: u64 = 0x8c14_c6ae_fe69_2a81;
const NO_KW: u8 = u8::MAX;

/// Bucket of a word of 2 to 16 bytes.
#[inline]
const fn kw_hash(first: u8, second: u8, before_last: u8, last: u8, len: usize) -> usize {
    let key = (first | 0x20) as u64
        | ((second | 0x20) as u64) << 8
        | ((last | 0x20) as u64) << 16
        | ((before_last | 0x20) as u64) << 24
        | (len as u64) << 32;
    (key.wrapping_mul(KW_HASH_MUL) >> (64 - KW_HASH_BITS)) as usize
}

macro_rules! keywords {
    ($($name:ident = $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(super) enum Kw { $($name,)* }

        const KW_ALL: &[Kw] = &[$(Kw::$name,)*];
        const KW_TEXT: &[&[u8]] = &[$($text,)*];
    };
}

const fn kw_table() -> [u8; 1 << KW_HASH_BITS] {
    let mut table = [NO_KW; 1 << KW_HASH_BITS];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        table[kw_hash(w[0], w[1], w[n - 2], w[n - 1], n)] = i as u8;
        i += 1;
    }
    table
}

static KW_TABLE: [u8; 1 << KW_HASH_BITS] = kw_table();

/// A byte's bit in the masks below (case-folded; any byte has one).
#[inline(always)]
const fn kw_bit(b: u8) -> u32 {
    1 << ((b | 0x20).wrapping_sub(b'a') & 31)
}

/// For each length, the bits of the keywords' first bytes and of their last bytes: most
/// names fail this cheap test before the hash.
const fn kw_ends() -> [(u32, u32); 17] {
    let mut t = [(0, 0); 17];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        t[n].0 |= kw_bit(w[0]);
        t[n].1 |= kw_bit(w[n - 1]);
        i += 1;
    }
    t
}

static KW_ENDS: [(u32, u32); 17] = kw_ends();

/// A 2- to 16-byte word as two overlapping little-endian integers (its first and last 2, 4
/// or 8 bytes), every byte `| 0x20`: two words of the same length give the same pair
/// exactly when every byte is equal after `| 0x20` (which folds ASCII case and maps no
/// other identifier byte to a letter).
#[inline(always)]
fn kw_fold(w: &[u8]) -> Option<(u64, u64)> {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let n = w.len();
    let (a, b) = if n >= 8 {
        (
            u64::from_le_bytes(w.get(..8)?.try_into().ok()?),
            u64::from_le_bytes(w.get(n - 8..)?.try_into().ok()?),
        )
    } else if n >= 4 {
        (
            u64::from(u32::from_le_bytes(w.get(..4)?.try_into().ok()?)),
            u64::from(u32::from_le_bytes(w.get(n - 4..)?.try_into().ok()?)),
        )
    } else {
        (
            u64::from(u16::from_le_bytes(w.get(..2)?.try_into().ok()?)),
            u64::from(u16::from_le_bytes(
                w.get(n.checked_sub(2)?..)?.try_into().ok()?,
            )),
        )
    };
    Some((a | FOLD, b | FOLD))
}

/// [`kw_fold`] of every keyword, with its length.
const fn kw_folded() -> [(usize, u64, u64); KW_TEXT.len()] {
    let mut t = [(0, 0, 0); KW_TEXT.len()];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        let width = if n >= 8 {
            8
        } else if n >= 4 {
            4
        } else {
            2
        };
        let (mut a, mut b) = (0x2020_2020_2020_2020u64, 0x2020_2020_2020_2020u64);
        let mut j = 0;
        while j < width {
            a |= ((w[j] | 0x20) as u64) << (8 * j);
            b |= ((w[n - width + j] | 0x20) as u64) << (8 * j);
            j += 1;
        }
        t[i] = (n, a, b);
        i += 1;
    }
    t
}

static KW_FOLDED: [(usize, u64, u64); KW_TEXT.len()] = kw_folded();

/// A keyword's identity, case-insensitively; None for any other word.
#[inline(always)]
pub(super) fn keyword(w: &[u8]) -> Option<Kw> {
    let n = w.len();
    let (&[first, second, ..], &[.., before_last, last]) = (w, w) else {
        return None;
    };
    // Most names fail this cheap test, before the hash.
    let &(firsts, lasts) = KW_ENDS.get(n)?;
    if firsts & kw_bit(first) == 0 || lasts & kw_bit(last) == 0 {
        return None;
    }
    let slot = usize::from(*KW_TABLE.get(kw_hash(first, second, before_last, last, n))?);
    let &(len, a, b) = KW_FOLDED.get(slot)?;
    if len == n && kw_fold(w)? == (a, b) {
        KW_ALL.get(slot).copied()
    } else {
        None
    }
}

keywords! {
    Select = b"select", Insert = b"insert", Replace = b"replace", Update = b"update",
    Delete = b"delete", Set = b"set", Show = b"show", Use = b"use", Begin = b"begin",
    Start = b"start", Transaction = b"transaction", Commit = b"commit",
    Rollback = b"rollback", Savepoint = b"savepoint", Release = b"release",
    Create = b"create", Alter = b"alter", Drop = b"drop", Truncate = b"truncate",
    Rename = b"rename", Call = b"call", Do = b"do", Load = b"load", Lock = b"lock",
    Unlock = b"unlock", Explain = b"explain", Describe = b"describe", Desc = b"desc",
    Kill = b"kill", With = b"with", Table = b"table", Tables = b"tables",
    Values = b"values", Value = b"value", From = b"from", Join = b"join",
    StraightJoin = b"straight_join", Inner = b"inner", Cross = b"cross", Left = b"left",
    Right = b"right", Natural = b"natural", Outer = b"outer", On = b"on",
    Using = b"using", Where = b"where", Having = b"having", Group = b"group",
    Order = b"order", Limit = b"limit", Window = b"window", Procedure = b"procedure",
    For = b"for", Into = b"into", Union = b"union", Intersect = b"intersect",
    Except = b"except", Returning = b"returning", Fetch = b"fetch", As = b"as",
    To = b"to", LowPriority = b"low_priority", HighPriority = b"high_priority",
    Delayed = b"delayed", Ignore = b"ignore", Quick = b"quick",
    Partition = b"partition", Force = b"force", If = b"if", Exists = b"exists",
    Temporary = b"temporary", Lateral = b"lateral", And = b"and", Or = b"or",
    Xor = b"xor", Not = b"not", In = b"in", Is = b"is", Like = b"like",
    Between = b"between", Regexp = b"regexp", Rlike = b"rlike", Sounds = b"sounds",
    Member = b"member", Null = b"null", True = b"true", False = b"false",
    Default = b"default", Case = b"case", End = b"end",
}

impl Kw {
    /// The statement kind a first keyword announces.
    pub(super) fn statement_kind(self) -> StatementKind {
        use StatementKind as K;
        match self {
            Kw::Select | Kw::With | Kw::Table | Kw::Values => K::Select,
            Kw::Insert => K::Insert,
            Kw::Replace => K::Replace,
            Kw::Update => K::Update,
            Kw::Delete => K::Delete,
            Kw::Set => K::Set,
            Kw::Show => K::Show,
            Kw::Use => K::Use,
            Kw::Begin => K::Begin,
            Kw::Commit => K::Commit,
            Kw::Rollback => K::Rollback,
            Kw::Savepoint | Kw::Release => K::Savepoint,
            Kw::Create | Kw::Alter | Kw::Drop | Kw::Truncate | Kw::Rename => K::Ddl,
            Kw::Call => K::Call,
            Kw::Do => K::Do,
            Kw::Load => K::Load,
            Kw::Lock | Kw::Unlock => K::Lock,
            Kw::Explain | Kw::Describe | Kw::Desc => K::Explain,
            Kw::Kill => K::Kill,
            _ => K::Other,
        }
    }

    /// Words skipped where a table name is expected (INSERT IGNORE INTO, IF NOT EXISTS …).
    fn table_modifier(self) -> bool {
        matches!(
            self,
            Kw::LowPriority
                | Kw::HighPriority
                | Kw::Delayed
                | Kw::Ignore
                | Kw::Quick
                | Kw::Into
                | Kw::If
                | Kw::Not
                | Kw::Exists
                | Kw::Temporary
                | Kw::Table
                | Kw::Tables
                | Kw::Lateral
        )
    }

    /// Words that keep their meaning where a table name is expected; any other keyword
    /// there (`value`, `status`, `end` …) is taken as the table's name.
    fn structural(self) -> bool {
        matches!(
            self,
            Kw::Select
                | Kw::With
                | Kw::Values
                | Kw::Value
                | Kw::Set
                | Kw::Where
                | Kw::On
                | Kw::Using
                | Kw::Join
                | Kw::StraightJoin
                | Kw::Inner
                | Kw::Cross
                | Kw::Left
                | Kw::Right
                | Kw::Natural
                | Kw::Outer
                | Kw::Group
                | Kw::Order
                | Kw::Limit
                | Kw::Having
                | Kw::For
                | Kw::Lock
                | Kw::Union
                | Kw::Intersect
                | Kw::Except
                | Kw::Window
                | Kw::Partition
                | Kw::As
                | Kw::Returning
                | Kw::Fetch
                | Kw::Procedure
        )
    }
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

// ---------------------------------------------------------------------------------------
// The scanner: a stack of frames (query blocks, parentheses, CASE, INSERT lists).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// A query block: the statement itself, a subquery, a derived table or parenthesised join.
    Query,
    /// A parenthesised expression or function arguments.
    Expr,
    Case,
    InsertColumns,
    Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AssignKind {
    Update,
    InsertSet,
    OnDuplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Clause {
    /// Before the statement's keyword (also after EXPLAIN).
    Start,
    /// Select list, GROUP/ORDER BY, LIMIT …: key mentions are neutral.
    Body,
    /// A table name is expected (after FROM, JOIN, UPDATE, INTO, TABLE …).
    TablesExpect,
    /// After a table name: an alias may follow.
    TablesAfter,
    /// After `AS`: the alias follows.
    TablesAfterAs,
    /// After an alias.
    TablesDone,
    /// WHERE, ON, HAVING.
    Cond,
    AssignUpdate,
    AssignInsertSet,
    AssignOnDuplicate,
    /// INSERT: after the table name.
    InsertTarget,
    InsertPartition,
    InsertColumnsDone,
    InsertRows,
    InsertAlias,
    /// INSERT: after ON, before DUPLICATE KEY UPDATE.
    InsertOnDup,
}

impl Clause {
    fn is_tables(self) -> bool {
        matches!(
            self,
            Clause::TablesExpect | Clause::TablesAfter | Clause::TablesAfterAs | Clause::TablesDone
        )
    }

    fn assign_kind(self) -> Option<AssignKind> {
        match self {
            Clause::AssignUpdate => Some(AssignKind::Update),
            Clause::AssignInsertSet => Some(AssignKind::InsertSet),
            Clause::AssignOnDuplicate => Some(AssignKind::OnDuplicate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: FrameKind,
    clause: Clause,
    /// Conditions here are conjuncts of a restriction (reached through AND and parentheses).
    conj: bool,
    /// An OR/XOR/|| was seen in this frame's condition.
    disj: bool,
    /// Inside a condition (for Expr and Case frames; Query frames use `clause`).
    in_cond: bool,
    /// The Cond clause came from a join's ON (a comma ends it).
    from_on: bool,
    /// Token index where a conjunct (Cond) or an assignment target (Assign) may start.
    conj_at: u32,
    open_ti: u32,
    /// Number of keys when this frame's condition started (OR discards those after it).
    key_start: u8,
    /// Pending BETWEEN … AND.
    between: u8,
    /// INSERT column list / row: index of the current column.
    col: u16,
    /// Query frames: a UNION / INTERSECT / EXCEPT was seen here; the current branch
    /// started with this many keys and this many table mentions.
    set_op: bool,
    branch_keys: u16,
    branch_tables: u16,
}

impl Frame {
    const ZERO: Frame = Frame::new(FrameKind::Query, Clause::Start, 0, 0);

    const fn new(kind: FrameKind, clause: Clause, open_ti: u32, key_start: u8) -> Self {
        Frame {
            kind,
            clause,
            conj: false,
            disj: false,
            in_cond: false,
            from_on: false,
            conj_at: 0,
            open_ti,
            key_start,
            between: 0,
            col: 0,
            set_op: false,
            branch_keys: 0,
            branch_tables: 0,
        }
    }

    fn in_cond_now(&self) -> bool {
        match self.kind {
            FrameKind::Query => self.clause == Clause::Cond,
            FrameKind::Expr | FrameKind::Case => self.in_cond,
            FrameKind::InsertColumns | FrameKind::Row => false,
        }
    }

    fn conj_now(&self) -> bool {
        match self.kind {
            FrameKind::Query => self.clause == Clause::Cond && self.conj,
            FrameKind::Expr => self.conj,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Prev {
    ti: u32,
    t: T,
    /// A key column name.
    key: bool,
    /// The index of a `?`.
    param: u16,
}

const NO_PREV: Prev = Prev {
    ti: 0,
    t: T::End,
    key: false,
    param: 0,
};

struct Scanner<'a, 'c, 'o> {
    cols: &'c KeyColumns,
    lx: Lexer<'a>,
    out: &'o mut Scan<'a>,
    frames: &'o mut [Frame; MAX_DEPTH],
    depth: usize,
    /// Parentheses opened beyond MAX_DEPTH (the scan then reports TooComplex).
    overflow: u32,
    ti: u32,
    p1: Prev,
    p2: Prev,
    /// The current statement's kind (several statements may follow each other).
    kind: Option<StatementKind>,
    first_kw: Option<Kw>,
    first_statement: bool,
    with_pending: bool,
    after_semi: bool,
    /// The next token other than `(` and `;` starts a statement.
    statement_pending: bool,
    ins_pos: [u16; MAX_INSERT_KEYS],
    ins_n: u8,
    ins_cols: bool,
    ins_table: bool,
    hint_keys: u8,
    hint_bad: bool,
    /// Table names and key conditions met so far (each UNION branch must find a key).
    tables_named: u16,
    keys_found: u16,
}

impl<'a, 'c, 'o> Scanner<'a, 'c, 'o> {
    fn new(
        sql: &'a [u8],
        dialect: Dialect,
        cols: &'c KeyColumns,
        out: &'o mut Scan<'a>,
        frames: &'o mut [Frame; MAX_DEPTH],
    ) -> Self {
        Scanner {
            cols,
            lx: Lexer::new(sql, dialect),
            out,
            frames,
            depth: 0,
            overflow: 0,
            // Token indices start at 1: 0 means "none" in `conj_at`.
            ti: 1,
            p1: NO_PREV,
            p2: NO_PREV,
            kind: None,
            first_kw: None,
            first_statement: true,
            with_pending: false,
            after_semi: false,
            statement_pending: true,
            ins_pos: [0; MAX_INSERT_KEYS],
            ins_n: 0,
            ins_cols: false,
            ins_table: false,
            hint_keys: 0,
            hint_bad: false,
            tables_named: 0,
            keys_found: 0,
        }
    }

    /// Ends the current branch of a UNION / INTERSECT / EXCEPT in the top frame (`last`:
    /// the frame or statement ends; checked only if a set operator came before): a branch
    /// that named a table must have found a key of its own.
    fn end_branch(&mut self, last: bool) {
        let f = *self.top();
        let keyless = self.tables_named > f.branch_tables && self.keys_found <= f.branch_keys;
        if keyless && (f.set_op || !last) {
            self.problem(KeyProblem::KeylessBranch);
        }
    }

    /// Starts a branch after a set operator in the top frame.
    fn start_branch(&mut self) {
        self.end_branch(false);
        let (tables, keys) = (self.tables_named, self.keys_found);
        let f = self.top_mut();
        f.set_op = true;
        f.branch_keys = keys;
        f.branch_tables = tables;
    }

    fn problem(&mut self, p: KeyProblem) {
        if self.out.problem.is_none() {
            self.out.problem = Some(p);
        }
    }

    fn add_key(&mut self, k: KeyRef<'a>) {
        self.keys_found = self.keys_found.saturating_add(1);
        if let Err(p) = self.out.push_key(k) {
            self.problem(p);
        }
    }

    /// Drops the keys found since `start` (an OR or a non-conjunct context discards them).
    fn discard_keys(&mut self, start: u8, p: KeyProblem) {
        if self.out.key_len > start {
            self.out.key_len = start;
            self.problem(p);
        }
    }

    fn top(&self) -> &Frame {
        &self.frames[self.depth]
    }

    fn top_mut(&mut self) -> &mut Frame {
        &mut self.frames[self.depth]
    }

    fn next_is(&self, op: Op) -> bool {
        self.lx.peek_next() == T::Op(op)
    }

    fn is_insert(&self) -> bool {
        matches!(
            self.kind,
            Some(StatementKind::Insert | StatementKind::Replace)
        )
    }

    fn set_kind(&mut self, kind: StatementKind) {
        self.kind = Some(kind);
        if self.first_statement {
            self.out.kind = kind;
        }
    }

    // --- leading hint comments -----------------------------------------------------------

    /// Reads the leading comments (hints among them). A line comment that holds a NUL
    /// byte is left to the lexer, which refuses it.
    fn leading_hints(&mut self) {
        let s = self.lx.s;
        let mut i = 0;
        loop {
            while s.get(i).is_some_and(|&c| c <= b' ') {
                i += 1;
            }
            match (s.get(i), s.get(i + 1), s.get(i + 2)) {
                (Some(b'/'), Some(b'*'), third) => {
                    if third == Some(&b'!') || (third == Some(&b'M') && s.get(i + 3) == Some(&b'!'))
                    {
                        break;
                    }
                    // Unterminated: left to the lexer, which reports it.
                    let Some(end) = comment_end(s, i + 2) else {
                        break;
                    };
                    self.hint(s.get(i + 2..end - 2).unwrap_or_default());
                    i = end;
                }
                (Some(b'#'), _, _) | (Some(b'-'), Some(b'-'), _)
                    if s.get(i) == Some(&b'#') || dash_comment(s, i) == Dash::Comment =>
                {
                    let end = line_end(s, i);
                    if end == i {
                        break;
                    }
                    i = end;
                }
                _ => break,
            }
        }
        self.lx.pos = i;
        self.hint_keys = self.out.key_len;
    }

    fn hint(&mut self, c: &'a [u8]) {
        match parse_hint(c, self.cols) {
            Hint::Key(v) => self.add_key(KeyRef::Literal(v)),
            Hint::Malformed => self.hint_bad = true,
            Hint::Comment => {}
        }
    }

    // --- main loop -----------------------------------------------------------------------

    fn run(&mut self) {
        loop {
            let t = self.lx.next();
            let ti = self.ti;
            self.ti = ti.wrapping_add(1);
            let mut key = false;
            let mut param = 0;
            match t {
                T::End => break,
                T::Bad => {
                    // The text is broken or unreadable wherever it was going: this problem wins.
                    self.out.problem = Some(self.lx.bad);
                    break;
                }
                T::Op(Op::Semi) => {}
                _ if self.statement_pending => self.statement_begins(t),
                _ => {}
            }
            match t {
                T::Op(op) => self.op(op, ti),
                T::Kw(k, w) => self.keyword(k, self.lx.text(w), ti),
                T::Name(n) => key = self.name(self.lx.text(n), ti),
                T::Param => {
                    param = self.out.placeholders;
                    self.out.placeholders = param.saturating_add(1);
                }
                _ => {}
            }
            self.p2 = self.p1;
            self.p1 = Prev { ti, t, key, param };
        }
    }

    fn finish(mut self) {
        self.end_branch(true);
        if self.hint_bad {
            self.out.problem = Some(KeyProblem::MalformedHint);
        } else if self.hint_keys > 0 {
            // The hint routes a statement whose *filter* the scanner cannot decide (a range,
            // an OR, an expression): such a statement only touches rows of the shard it runs
            // on. It never lifts a problem with a key the statement *writes* (an INSERT's
            // values, a key assignment) nor a reading problem, and the keys read in the
            // statement stay (after the hint's) so that routing refuses a hint that
            // contradicts them.
            self.out.from_hint = true;
            if self
                .out
                .problem
                .is_some_and(|p| p.lifted_by_hint(self.out.kind))
            {
                self.out.problem = None;
            }
        }
    }

    /// The first token of a statement (or a `(` before it).
    fn statement_begins(&mut self, t: T) {
        if self.after_semi {
            self.out.multi_statement = true;
            self.after_semi = false;
        }
        match t {
            T::Op(Op::LParen) => return,
            T::Kw(k, _) => {
                self.first_kw = Some(k);
                self.set_kind(k.statement_kind());
            }
            _ => self.set_kind(StatementKind::Other),
        }
        self.statement_pending = false;
    }

    fn op(&mut self, op: Op, ti: u32) {
        match op {
            Op::LParen => self.open(ti),
            Op::RParen => self.close(),
            Op::Comma => self.comma(ti),
            Op::Semi => self.semicolon(),
            Op::OrOr => self.or(),
            Op::AndAnd => self.and(ti),
            _ => {}
        }
    }

    fn semicolon(&mut self) {
        if self.kind.is_some() {
            self.first_statement = false;
        }
        self.depth = 0;
        self.overflow = 0;
        self.end_branch(true);
        self.frames[0] = Frame::new(FrameKind::Query, Clause::Start, 0, self.out.key_len);
        self.frames[0].branch_tables = self.tables_named;
        self.frames[0].branch_keys = self.keys_found;
        self.kind = None;
        self.first_kw = None;
        self.with_pending = false;
        self.ins_n = 0;
        self.ins_cols = false;
        self.ins_table = false;
        self.after_semi = true;
        self.statement_pending = true;
    }

    fn and(&mut self, ti: u32) {
        let f = self.top_mut();
        if f.between > 0 {
            f.between -= 1;
        } else if f.in_cond_now() {
            f.conj_at = ti.wrapping_add(1);
        }
    }

    fn or(&mut self) {
        if self.overflow > 0 {
            return;
        }
        let f = self.top_mut();
        if !f.in_cond_now() {
            return;
        }
        f.disj = true;
        f.conj = false;
        let start = f.key_start;
        self.discard_keys(start, KeyProblem::OrCondition);
    }

    fn push(&mut self, f: Frame) -> bool {
        if self.overflow > 0 || self.depth + 1 >= MAX_DEPTH {
            self.problem(KeyProblem::TooComplex);
            return false;
        }
        self.depth += 1;
        self.frames[self.depth] = f;
        true
    }

    fn open(&mut self, ti: u32) {
        let parent = *self.top();
        let mut f = Frame::new(FrameKind::Expr, Clause::Body, ti, self.out.key_len);
        f.branch_tables = self.tables_named;
        f.branch_keys = self.keys_found;
        f.in_cond = parent.in_cond_now();
        f.conj_at = ti.wrapping_add(1);
        if parent.kind == FrameKind::Query {
            let depth0 = self.depth == 0;
            match parent.clause {
                Clause::TablesExpect => {
                    f.kind = FrameKind::Query;
                    f.clause = Clause::TablesExpect;
                }
                Clause::InsertTarget if depth0 => f.kind = FrameKind::InsertColumns,
                Clause::InsertRows if depth0 => f.kind = FrameKind::Row,
                _ => {}
            }
        }
        if f.kind == FrameKind::Expr {
            f.conj = f.in_cond && parent.conj_now() && parent.conj_at == ti;
        }
        if !self.push(f) {
            self.overflow += 1;
            return;
        }
        if f.kind == FrameKind::Row {
            self.row_value(0);
        }
    }

    fn close(&mut self) {
        if self.overflow > 0 {
            self.overflow -= 1;
            return;
        }
        while self.depth > 0 && self.top().kind == FrameKind::Case {
            self.depth -= 1;
        }
        if self.depth == 0 {
            return;
        }
        let f = *self.top();
        if f.kind == FrameKind::Query {
            self.end_branch(true);
        }
        self.depth -= 1;
        let parent = *self.top();
        match f.kind {
            FrameKind::Expr if f.conj && self.out.key_len > f.key_start => {
                // `(userid = 5) = 0`, `(userid = 5) IS NULL`: the group is not a conjunct.
                let comma_ends = parent.kind == FrameKind::Query && parent.from_on;
                if !cond_boundary(self.lx.peek_next(), comma_ends) {
                    self.discard_keys(f.key_start, KeyProblem::NotConjunct);
                }
            }
            FrameKind::Expr if parent.clause == Clause::InsertPartition => {
                self.top_mut().clause = Clause::InsertTarget;
            }
            FrameKind::InsertColumns => {
                self.ins_cols = true;
                self.top_mut().clause = Clause::InsertColumnsDone;
            }
            FrameKind::Row => {
                let last = self.ins_pos[..usize::from(self.ins_n)].iter().max();
                if last.is_some_and(|&p| f.col < p) {
                    self.problem(KeyProblem::MalformedInsert);
                }
            }
            FrameKind::Query
                if parent.kind == FrameKind::Query && parent.clause == Clause::TablesExpect =>
            {
                self.top_mut().clause = Clause::TablesAfter;
            }
            _ => {}
        }
    }

    fn comma(&mut self, ti: u32) {
        if self.overflow > 0 {
            return;
        }
        let f = self.top_mut();
        match f.kind {
            FrameKind::Query => match f.clause {
                c if c.is_tables() => f.clause = Clause::TablesExpect,
                Clause::Cond if f.from_on => f.clause = Clause::TablesExpect,
                c if c.assign_kind().is_some() => f.conj_at = ti.wrapping_add(1),
                _ => {}
            },
            FrameKind::InsertColumns => f.col = f.col.saturating_add(1),
            FrameKind::Row => {
                f.col = f.col.saturating_add(1);
                let col = f.col;
                self.row_value(col);
            }
            FrameKind::Expr if f.conj => {
                // A row constructor `(a, b) = (1, 2)`: not a conjunct.
                f.conj = false;
                let start = f.key_start;
                self.discard_keys(start, KeyProblem::NotConjunct);
            }
            _ => {}
        }
    }

    fn table(&mut self, name: &'a [u8]) {
        self.out.push_table(name);
        self.tables_named = self.tables_named.saturating_add(1);
        let insert_target = self.depth == 0 && self.is_insert() && !self.ins_table;
        if insert_target {
            self.ins_table = true;
        }
        self.top_mut().clause = if insert_target {
            Clause::InsertTarget
        } else {
            Clause::TablesAfter
        };
    }

    fn start_cond(&mut self, ti: u32, from_on: bool) {
        let key_start = self.out.key_len;
        let f = self.top_mut();
        f.clause = Clause::Cond;
        f.conj = true;
        f.disj = false;
        f.from_on = from_on;
        f.conj_at = ti.wrapping_add(1);
        f.key_start = key_start;
        f.between = 0;
    }

    fn start_assign(&mut self, kind: AssignKind, ti: u32) {
        let f = self.top_mut();
        f.clause = match kind {
            AssignKind::Update => Clause::AssignUpdate,
            AssignKind::InsertSet => Clause::AssignInsertSet,
            AssignKind::OnDuplicate => Clause::AssignOnDuplicate,
        };
        f.conj_at = ti.wrapping_add(1);
    }

    /// An INSERT source other than VALUES/SET (SELECT, TABLE, WITH) is being read.
    fn check_insert_select(&mut self) {
        if self.is_insert()
            && matches!(
                self.frames[0].clause,
                Clause::InsertTarget | Clause::InsertColumnsDone | Clause::InsertPartition
            )
        {
            self.problem(KeyProblem::InsertSelect);
        }
    }

    fn keyword(&mut self, k: Kw, w: &'a [u8], ti: u32) {
        if self.overflow > 0 {
            return;
        }
        let f = *self.top();
        if k == Kw::Temporary
            && self.depth == 0
            && matches!(self.p1.t, T::Kw(Kw::Create | Kw::Drop | Kw::Replace, _))
        {
            self.out.temporary = true;
        }
        if f.kind == FrameKind::Query && f.clause == Clause::TablesExpect && !k.structural() {
            if !k.table_modifier() {
                self.table(w);
            }
            return;
        }
        match k {
            Kw::And => return self.and(ti),
            Kw::Or | Kw::Xor => return self.or(),
            Kw::Between => {
                let f = self.top_mut();
                f.between = f.between.saturating_add(1);
                return;
            }
            Kw::Case => {
                let mut c = Frame::new(FrameKind::Case, Clause::Body, ti, self.out.key_len);
                c.in_cond = f.in_cond_now();
                self.push(c);
                return;
            }
            Kw::End => {
                let ends_value = matches!(
                    self.p1.t,
                    T::Name(_)
                        | T::Num(_)
                        | T::Str(..)
                        | T::Param
                        | T::Var
                        | T::Op(Op::RParen)
                        | T::Kw(Kw::End | Kw::Null | Kw::True | Kw::False, _)
                );
                if f.kind == FrameKind::Case && ends_value {
                    self.depth -= 1;
                }
                return;
            }
            _ => {}
        }
        // A subquery: SELECT/WITH/TABLE right after `(`.
        if self.depth > 0
            && f.open_ti.wrapping_add(1) == ti
            && matches!(k, Kw::Select | Kw::With | Kw::Table)
            && f.kind != FrameKind::Case
        {
            self.check_insert_select();
            let (tables, keys) = (self.tables_named, self.keys_found);
            let f = self.top_mut();
            f.kind = FrameKind::Query;
            f.branch_tables = tables;
            f.branch_keys = keys;
            f.clause = if k == Kw::Table {
                Clause::TablesExpect
            } else {
                Clause::Body
            };
            f.conj = false;
            return;
        }
        if f.kind != FrameKind::Query {
            return;
        }
        if matches!(k, Kw::Union | Kw::Intersect | Kw::Except) {
            // Also after a parenthesised first branch, still at the statement's start.
            self.start_branch();
            self.top_mut().clause = Clause::Body;
            return;
        }
        let depth0 = self.depth == 0;
        if depth0
            && (f.clause == Clause::Start
                || (self.with_pending
                    && matches!(
                        k,
                        Kw::Select | Kw::Insert | Kw::Replace | Kw::Update | Kw::Delete
                    )))
        {
            return self.statement_keyword(k);
        }
        let clause = f.clause;
        let kind = self.kind;
        match k {
            Kw::Select | Kw::With => {
                if depth0 {
                    self.check_insert_select();
                }
                self.top_mut().clause = Clause::Body;
            }
            Kw::From => self.top_mut().clause = Clause::TablesExpect,
            Kw::Join | Kw::StraightJoin
                if clause.is_tables() || (clause == Clause::Cond && f.from_on) =>
            {
                self.top_mut().clause = Clause::TablesExpect;
            }
            Kw::On => match clause {
                Clause::TablesAfter | Clause::TablesAfterAs | Clause::TablesDone => {
                    self.start_cond(ti, true)
                }
                Clause::InsertRows
                | Clause::InsertAlias
                | Clause::InsertColumnsDone
                | Clause::AssignInsertSet
                    if depth0 && self.is_insert() =>
                {
                    self.top_mut().clause = Clause::InsertOnDup
                }
                _ if kind == Some(StatementKind::Ddl) => {
                    self.top_mut().clause = Clause::TablesExpect
                }
                _ => {}
            },
            Kw::Using if clause.is_tables() => {
                self.top_mut().clause = if self.next_is(Op::LParen) {
                    Clause::TablesDone
                } else {
                    Clause::TablesExpect
                };
            }
            Kw::Where | Kw::Having => self.start_cond(ti, false),
            Kw::Group
            | Kw::Order
            | Kw::Limit
            | Kw::Window
            | Kw::Procedure
            | Kw::For
            | Kw::Lock
            | Kw::Returning
            | Kw::Fetch => self.top_mut().clause = Clause::Body,
            Kw::Into => self.top_mut().clause = Clause::Body,
            Kw::Set if depth0 => match (kind, clause) {
                (
                    Some(StatementKind::Update),
                    Clause::TablesExpect
                    | Clause::TablesAfter
                    | Clause::TablesAfterAs
                    | Clause::TablesDone
                    | Clause::Cond,
                ) => self.start_assign(AssignKind::Update, ti),
                (Some(StatementKind::Insert | StatementKind::Replace), Clause::InsertTarget) => {
                    self.start_assign(AssignKind::InsertSet, ti)
                }
                _ => {}
            },
            Kw::Update if depth0 && clause == Clause::InsertOnDup => {
                self.start_assign(AssignKind::OnDuplicate, ti)
            }
            Kw::Values | Kw::Value
                if depth0
                    && self.is_insert()
                    && matches!(clause, Clause::InsertTarget | Clause::InsertColumnsDone) =>
            {
                if !self.ins_cols {
                    self.problem(KeyProblem::InsertWithoutColumns);
                }
                self.top_mut().clause = Clause::InsertRows;
            }
            Kw::Table | Kw::Tables => {
                if depth0 {
                    self.check_insert_select();
                }
                if kind != Some(StatementKind::Show) {
                    self.top_mut().clause = Clause::TablesExpect;
                }
            }
            Kw::Partition if clause == Clause::InsertTarget => {
                self.top_mut().clause = Clause::InsertPartition
            }
            Kw::As => match clause {
                Clause::TablesAfter => self.top_mut().clause = Clause::TablesAfterAs,
                Clause::InsertRows => self.top_mut().clause = Clause::InsertAlias,
                _ => {}
            },
            Kw::To => {
                if kind == Some(StatementKind::Rollback) {
                    self.set_kind(StatementKind::Savepoint);
                } else if kind == Some(StatementKind::Ddl) {
                    self.top_mut().clause = Clause::TablesExpect;
                }
            }
            Kw::Transaction if self.first_kw == Some(Kw::Start) => {
                self.set_kind(StatementKind::Begin)
            }
            _ => {}
        }
    }

    /// The keyword that starts a statement (or its body after EXPLAIN or a WITH clause).
    fn statement_keyword(&mut self, k: Kw) {
        if self.with_pending {
            self.with_pending = false;
            if k != Kw::Select {
                self.set_kind(k.statement_kind());
            }
        }
        let clause = match k {
            Kw::Insert | Kw::Replace => {
                self.ins_n = 0;
                self.ins_cols = false;
                self.ins_table = false;
                Clause::TablesExpect
            }
            Kw::Update | Kw::Table | Kw::Truncate | Kw::Describe | Kw::Desc => Clause::TablesExpect,
            Kw::Explain => Clause::Start,
            Kw::With => {
                self.with_pending = true;
                Clause::Body
            }
            _ => Clause::Body,
        };
        self.top_mut().clause = clause;
    }

    /// An identifier; returns whether it names a key column.
    fn name(&mut self, n: &'a [u8], ti: u32) -> bool {
        if self.overflow > 0 {
            return false;
        }
        let f = *self.top();
        if f.kind == FrameKind::Query {
            match f.clause {
                Clause::Start => {
                    self.top_mut().clause = Clause::Body;
                    return false;
                }
                Clause::TablesExpect => {
                    self.table(n);
                    return false;
                }
                Clause::TablesAfter | Clause::TablesAfterAs => {
                    self.top_mut().clause = Clause::TablesDone;
                    return false;
                }
                _ => {}
            }
        }
        if !self.cols.contains(n) || self.next_is(Op::LParen) {
            return false;
        }
        self.key_ref(f, ti);
        true
    }

    fn key_ref(&mut self, f: Frame, ti: u32) {
        match f.kind {
            FrameKind::InsertColumns => {
                match self.ins_pos.get_mut(usize::from(self.ins_n)) {
                    Some(slot) => {
                        *slot = f.col;
                        self.ins_n += 1;
                    }
                    None => self.problem(KeyProblem::TooManyKeys),
                }
                return;
            }
            FrameKind::Query => match f.clause {
                Clause::AssignUpdate | Clause::AssignInsertSet | Clause::AssignOnDuplicate => {
                    let kind = f.clause.assign_kind().unwrap_or(AssignKind::Update);
                    if f.conj_at == ti && matches!(self.lx.peek_next(), T::Op(Op::Eq | Op::Assign))
                    {
                        self.assignment(kind);
                    }
                    return;
                }
                Clause::Cond => {}
                _ => return,
            },
            FrameKind::Expr | FrameKind::Case => {
                if !f.in_cond {
                    return;
                }
            }
            FrameKind::Row => return,
        }
        self.cond_key(f, ti);
    }

    fn assignment(&mut self, kind: AssignKind) {
        match kind {
            AssignKind::Update | AssignKind::OnDuplicate => self.problem(KeyProblem::KeyAssignment),
            AssignKind::InsertSet => {
                let mut s = self.lx;
                s.next(); // `=`
                match read_value(&mut s, self.out.placeholders, self.cols) {
                    Val::Key(k) => {
                        if matches!(
                            s.next(),
                            T::Op(Op::Comma | Op::Semi) | T::End | T::Kw(Kw::On | Kw::Returning, _)
                        ) {
                            self.add_key(k);
                        } else {
                            self.problem(KeyProblem::NotALiteral);
                        }
                    }
                    Val::Bad(p) => self.problem(p),
                    Val::KeyCol | Val::NotLiteral => self.problem(KeyProblem::NotALiteral),
                }
            }
        }
    }

    /// Why a well-formed `key = value` does not count: an OR around it, or something else.
    fn context_problem(&mut self) {
        let mut d = self.depth;
        let mut or = false;
        loop {
            let f = &self.frames[d];
            or |= f.disj;
            if f.kind == FrameKind::Query || d == 0 {
                break;
            }
            d -= 1;
        }
        self.problem(if or {
            KeyProblem::OrCondition
        } else {
            KeyProblem::NotConjunct
        });
    }

    /// A key column inside a condition.
    fn cond_key(&mut self, f: Frame, ti: u32) {
        let comma_ends = f.kind == FrameKind::Query && f.from_on;
        let (p1, p2) = (self.p1, self.p2);
        // `value = key`
        if matches!(p1.t, T::Op(Op::Eq | Op::NullEq)) {
            if p2.key {
                return;
            }
            let v: Val<'a> = match p2.t {
                T::Num(n) => number_value(self.lx.text(n)).into(),
                T::Str(c, e) => string_value(self.lx.text(c), e).into(),
                T::Param => Val::Key(KeyRef::Param(p2.param)),
                _ => Val::NotLiteral,
            };
            match v {
                Val::Key(k) => {
                    let after = self.lx.peek_next();
                    if p2.ti == f.conj_at && f.conj_now() && cond_boundary(after, comma_ends) {
                        self.add_key(k);
                    } else {
                        self.context_problem();
                    }
                }
                Val::Bad(p) => self.problem(p),
                Val::KeyCol | Val::NotLiteral => self.problem(KeyProblem::NotALiteral),
            }
            return;
        }
        if matches!(
            p1.t,
            T::Op(Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Ne)
                | T::Kw(Kw::Like | Kw::Regexp | Kw::Rlike | Kw::Between, _)
        ) {
            return self.problem(KeyProblem::NonEquality);
        }
        // `key = value`, `key IN (…)`, `key < …`
        let mut s = self.lx;
        match s.next() {
            T::Op(Op::Eq | Op::NullEq) => {
                match read_value(&mut s, self.out.placeholders, self.cols) {
                    Val::Key(k) => {
                        if ti == f.conj_at && f.conj_now() && cond_boundary(s.next(), comma_ends) {
                            self.add_key(k);
                        } else {
                            self.context_problem();
                        }
                    }
                    Val::Bad(p) => self.problem(p),
                    Val::KeyCol => {}
                    Val::NotLiteral => self.problem(KeyProblem::NotALiteral),
                }
            }
            T::Op(Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Ne)
            | T::Kw(
                Kw::Like
                | Kw::Between
                | Kw::Is
                | Kw::Not
                | Kw::Regexp
                | Kw::Rlike
                | Kw::Sounds
                | Kw::Member,
                _,
            ) => self.problem(KeyProblem::NonEquality),
            T::Kw(Kw::In, _) => {
                if s.next() != T::Op(Op::LParen) {
                    return self.problem(KeyProblem::NotALiteral);
                }
                let base = self.out.placeholders;
                let after = match in_values(s, base, self.cols, |_| {}) {
                    Ok(mut after) => after.next(),
                    Err(p) => return self.problem(p),
                };
                if ti == f.conj_at && f.conj_now() && cond_boundary(after, comma_ends) {
                    let cols = self.cols;
                    let _ = in_values(s, base, cols, |k| self.add_key(k));
                } else {
                    self.context_problem();
                }
            }
            _ => {}
        }
    }

    /// An INSERT row's value at column `col` (called right after `(` or `,`).
    fn row_value(&mut self, col: u16) {
        if !self.ins_pos[..usize::from(self.ins_n)].contains(&col) {
            return;
        }
        let start = self.lx;
        let mut s = start;
        match read_value(&mut s, self.out.placeholders, self.cols) {
            Val::Key(k) => {
                if matches!(s.next(), T::Op(Op::Comma | Op::RParen)) {
                    self.add_key(k);
                } else {
                    self.problem(KeyProblem::NotALiteral);
                }
            }
            Val::Bad(p) => self.problem(p),
            Val::KeyCol | Val::NotLiteral => {
                let mut s = start;
                if matches!(s.next(), T::Op(Op::Comma | Op::RParen) | T::End) {
                    self.problem(KeyProblem::MalformedInsert);
                } else {
                    self.problem(KeyProblem::NotALiteral);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyProblem as P;
    use StatementKind as K;

    fn cols() -> KeyColumns {
        KeyColumns::new(["userid", "Owner_Id"])
    }

    fn sc(sql: &str) -> Scan<'_> {
        checked_scan(sql.as_bytes(), &cols())
    }

    /// `scan`, after checking that the fast path either gives up or agrees with the full
    /// scanner (every statement of these tests goes through here).
    fn checked_scan<'a>(sql: &'a [u8], cols: &KeyColumns) -> Scan<'a> {
        let full = scan_full(sql, cols);
        if let Some(fast) = super::super::fast::scan(sql, cols) {
            assert_eq!(
                fast,
                full,
                "fast path on {:?}",
                String::from_utf8_lossy(sql)
            );
        }
        let r = scan(sql, cols);
        assert_eq!(r, full, "{:?}", String::from_utf8_lossy(sql));
        r
    }

    fn int(n: u64) -> KeyRef<'static> {
        KeyRef::Literal(KeyValue::Int(n))
    }

    fn text(s: &str) -> KeyRef<'_> {
        KeyRef::Literal(KeyValue::Str(s.as_bytes()))
    }

    fn param(i: u16) -> KeyRef<'static> {
        KeyRef::Param(i)
    }

    /// (sql, keys, problem) — the core table.
    fn check(cases: &[(&str, &[KeyRef<'_>], Option<KeyProblem>)]) {
        for (sql, keys, problem) in cases {
            let r = sc(sql);
            assert_eq!(r.keys(), *keys, "keys of {sql:?}: {r:?}");
            assert_eq!(r.problem, *problem, "problem of {sql:?}: {r:?}");
        }
    }

    #[test]
    fn equality_literals_and_quoting() {
        check(&[
            ("SELECT * FROM t WHERE userid = 12345", &[int(12345)], None),
            (
                "SELECT * FROM t WHERE userid = '12345'",
                &[int(12345)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = \"12345\"",
                &[int(12345)],
                None,
            ),
            ("SELECT * FROM t WHERE userid = '00123'", &[int(123)], None),
            ("SELECT * FROM t WHERE userid = 00123", &[int(123)], None),
            ("SELECT * FROM t WHERE userid = +7", &[int(7)], None),
            ("SELECT * FROM t WHERE userid = 0", &[int(0)], None),
            ("SELECT * FROM t WHERE userid = '000'", &[int(0)], None),
            ("SELECT * FROM t WHERE userid = 'abc'", &[text("abc")], None),
            ("SELECT * FROM t WHERE userid = ''", &[text("")], None),
            (
                "SELECT * FROM t WHERE userid = 'a-b_c@d'",
                &[text("a-b_c@d")],
                None,
            ),
            ("SELECT * FROM t WHERE userid <=> 9", &[int(9)], None),
            ("SELECT * FROM t WHERE userid=9", &[int(9)], None),
            ("select * from t where USERID = 9", &[int(9)], None),
            ("SELECT * FROM t WHERE owner_id = 3", &[int(3)], None),
            ("SELECT * FROM t WHERE 12345 = userid", &[int(12345)], None),
            (
                "SELECT * FROM t WHERE '77' = userid AND a = 1",
                &[int(77)],
                None,
            ),
            ("SELECT * FROM t WHERE ? = userid", &[param(0)], None),
            (
                "SELECT * FROM t WHERE userid = 18446744073709551615",
                &[int(u64::MAX)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 18446744073709551616",
                &[text("18446744073709551616")],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = '0018446744073709551616'",
                &[text("18446744073709551616")],
                None,
            ),
        ]);
    }

    #[test]
    fn int_and_quoted_int_canonicalize_identically() {
        let a = sc("SELECT 1 FROM t WHERE userid = 12345");
        let b = sc("SELECT 1 FROM t WHERE userid = '12345'");
        let c = sc("SELECT 1 FROM t WHERE userid = '0012345'");
        let canon = |s: &Scan<'_>| {
            let mut buf = [0u8; 20];
            match s.keys()[0] {
                KeyRef::Literal(v) => v.canonical(&mut buf).to_vec(),
                KeyRef::Param(_) => panic!("param"),
            }
        };
        assert_eq!(canon(&a), b"12345");
        assert_eq!(canon(&a), canon(&b));
        assert_eq!(canon(&a), canon(&c));
        let mut buf = [0u8; 20];
        assert_eq!(KeyValue::Int(0).canonical(&mut buf), b"0");
        assert_eq!(
            KeyValue::Int(u64::MAX).canonical(&mut buf),
            b"18446744073709551615"
        );
        assert_eq!(KeyValue::Str(b"abc").canonical(&mut buf), b"abc");
    }

    #[test]
    fn qualified_backticked_and_lookalike_columns() {
        check(&[
            ("SELECT * FROM t WHERE t.userid = 5", &[int(5)], None),
            ("SELECT * FROM t WHERE `userid` = 5", &[int(5)], None),
            ("SELECT * FROM t WHERE `t`.`userid` = 5", &[int(5)], None),
            ("SELECT * FROM d.t x WHERE d.x.userid = 5", &[int(5)], None),
            ("SELECT * FROM t u WHERE u.`UserId` = 5", &[int(5)], None),
            ("SELECT * FROM t WHERE parent_userid = 5", &[], None),
            ("SELECT * FROM t WHERE userid2 = 5", &[], None),
            ("SELECT * FROM t WHERE `user id` = 5", &[], None),
            ("SELECT * FROM t WHERE userid.x = 5", &[], None),
            ("SELECT * FROM t WHERE @userid = 5", &[], None),
            ("SELECT * FROM t WHERE @@userid = 5", &[], None),
            ("SELECT * FROM t WHERE userid(3) = 5", &[], None),
            // Key column in the select list, ORDER BY, GROUP BY, functions: neutral.
            (
                "SELECT userid, COUNT(userid) FROM t GROUP BY userid ORDER BY userid",
                &[],
                None,
            ),
            (
                "SELECT userid > 5 AS big FROM t WHERE userid = 3",
                &[int(3)],
                None,
            ),
            ("SELECT userid = 4 FROM t", &[], None),
        ]);
    }

    #[test]
    fn strings_and_comments_never_count() {
        check(&[
            (
                "SELECT * FROM t WHERE name = 'userid = 5' AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE name = \"userid = 5\" AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE name = 'it''s userid = 5' AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE name = 'a\\' userid = 5' AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 -- userid = 1\n AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 # userid = 3\n AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 /* userid = 2 */ AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 /* userid = 2 OR */ AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE `userid = 5` = 1 AND userid = 7",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 'x?' AND userid = ?",
                &[param(0)],
                None,
            ),
            ("SELECT * FROM t WHERE a = 1 -- userid = 1", &[], None),
            ("SELECT * FROM t WHERE a = 1 # userid = 1", &[], None),
            // `--` without a following space is two minus signs, not a comment.
            (
                "SELECT * FROM t WHERE userid = 5--1",
                &[],
                Some(P::NotConjunct),
            ),
            // Executable comments are SQL.
            (
                "SELECT * FROM t WHERE /*! userid = 5 AND */ a = 1",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE /*!50001 userid = 5 */",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE /*M!100100 userid = 5 */",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 /*! OR b = 2 */ AND userid = 5",
                &[],
                Some(P::OrCondition),
            ),
        ]);
    }

    #[test]
    fn conjunctions_and_or() {
        check(&[
            (
                "SELECT * FROM t WHERE userid = 5 AND a = 1",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 AND userid = 5 AND b = 2",
                &[int(5)],
                None,
            ),
            ("SELECT * FROM t WHERE a = 1 && userid = 5", &[int(5)], None),
            ("SELECT * FROM t WHERE (userid = 5)", &[int(5)], None),
            (
                "SELECT * FROM t WHERE ((userid = 5) AND a)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a = 1 AND (b = 2 AND userid = 5)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND (a = 1 OR b = 2)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE (a OR b) AND userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND f(a OR b)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a BETWEEN 1 AND 5 AND userid = 3",
                &[int(3)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 OR a = 1",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE a = 1 OR userid = 5",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE a = 1 || userid = 5",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 XOR a",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE (userid = 5 AND a) OR b",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE a OR (userid = 5 AND b)",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 OR userid = 6",
                &[],
                Some(P::OrCondition),
            ),
            ("SELECT a OR b FROM t WHERE userid = 5", &[int(5)], None),
            (
                "SELECT * FROM t WHERE userid = 5 ORDER BY a OR b",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND userid = 6",
                &[int(5), int(6)],
                None,
            ),
            // Not a top-level conjunct.
            (
                "SELECT * FROM t WHERE NOT userid = 5",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE NOT (userid = 5)",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE !(userid = 5)",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE (userid = 5) = 0",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE (userid = 5) IS NOT TRUE",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 IS NOT NULL",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 = 0",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE a = 5 = userid",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE IF(userid = 5, 1, 0)",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE CASE WHEN a AND userid = 5 AND b THEN 1 END",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE (userid = 5, a) = (1, 2)",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE userid = '5' COLLATE utf8mb4_bin",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 + 1",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE a BETWEEN 1 AND userid = 5",
                &[],
                Some(P::NotConjunct),
            ),
        ]);
    }

    #[test]
    fn non_equality_and_non_literals() {
        check(&[
            (
                "SELECT * FROM t WHERE userid > 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid >= 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid < 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid <= 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid <> 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid != 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid LIKE '5%'",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid BETWEEN 1 AND 5",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid IS NULL",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid IS NOT NULL",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid NOT IN (1, 2)",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid REGEXP '^1'",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE 5 < userid",
                &[],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND userid < 9",
                &[int(5)],
                Some(P::NonEquality),
            ),
            (
                "SELECT * FROM t WHERE userid = other_col",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE other_col = userid",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = f(5)",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = (SELECT u FROM v)",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = @v",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = X'31'",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = _utf8mb4'31'",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid IN (SELECT u FROM v)",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid IN (1, a)",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = .5",
                &[],
                Some(P::NotALiteral),
            ),
            // Unsupported literals.
            (
                "SELECT * FROM t WHERE userid = -5",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = 1.5",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = 1e3",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = 0x1F",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = NULL",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = TRUE",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = '5.0'",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = '-5'",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = ' 5'",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = '5 '",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid = '1e3'",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE userid IN (1, -2)",
                &[],
                Some(P::UnsupportedLiteral),
            ),
            (
                "SELECT * FROM t WHERE -5 = userid",
                &[],
                Some(P::NotConjunct),
            ),
            // Escaped strings.
            (
                "SELECT * FROM t WHERE userid = 'a\\'b'",
                &[],
                Some(P::EscapedString),
            ),
            (
                "SELECT * FROM t WHERE userid = 'a''b'",
                &[],
                Some(P::EscapedString),
            ),
            (
                "SELECT * FROM t WHERE userid = 'a\\nb'",
                &[],
                Some(P::EscapedString),
            ),
            (
                "SELECT * FROM t WHERE 'a''b' = userid",
                &[],
                Some(P::EscapedString),
            ),
            // Join conditions between key columns are neither.
            (
                "SELECT * FROM a JOIN b ON a.userid = b.userid WHERE a.userid = 5",
                &[int(5)],
                None,
            ),
        ]);
    }

    #[test]
    fn in_lists() {
        check(&[
            ("SELECT * FROM t WHERE userid IN (5)", &[int(5)], None),
            ("SELECT * FROM t WHERE userid IN ('5')", &[int(5)], None),
            (
                "SELECT * FROM t WHERE userid IN (5, '6', 'x')",
                &[int(5), int(6), text("x")],
                None,
            ),
            ("SELECT * FROM t WHERE userid IN (5, 5, 5)", &[int(5)], None),
            (
                "SELECT * FROM t WHERE a = ? AND userid IN (?, ?) AND b = ?",
                &[param(1), param(2)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid in(7) AND a = 1",
                &[int(7)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid IN (5) OR a",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE NOT userid IN (5)",
                &[],
                Some(P::NotConjunct),
            ),
            (
                "SELECT * FROM t WHERE userid IN ()",
                &[],
                Some(P::NotALiteral),
            ),
            (
                "SELECT * FROM t WHERE userid IN (1, 2",
                &[],
                Some(P::NotALiteral),
            ),
        ]);
        let many: String = (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let sql = format!("SELECT * FROM t WHERE userid IN ({many})");
        let r = sc(&sql);
        assert_eq!(r.keys().len(), MAX_KEYS);
        assert_eq!(r.problem, Some(P::TooManyKeys));
    }

    #[test]
    fn placeholders() {
        let r = sc("SELECT * FROM t WHERE a = ? AND userid = ? AND b IN (?, ?) LIMIT ?");
        assert_eq!(r.keys(), &[param(1)]);
        assert_eq!(r.placeholders, 5);
        let r = sc("SELECT '?', \"?\", `?` FROM t /* ? */ WHERE userid = ? -- ?\n AND c = ?");
        assert_eq!(r.keys(), &[param(0)]);
        assert_eq!(r.placeholders, 2);
        let r = sc("INSERT INTO t (a, userid, b) VALUES (?, ?, ?), (?, ?, ?)");
        assert_eq!(r.keys(), &[param(1), param(4)]);
        assert_eq!(r.placeholders, 6);
        let r = sc("UPDATE t SET a = ? WHERE userid = ?");
        assert_eq!(r.keys(), &[param(1)]);
        assert_eq!(r.placeholders, 2);
        let r = sc("SELECT 1");
        assert_eq!(r.placeholders, 0);
    }

    #[test]
    fn inserts() {
        check(&[
            ("INSERT INTO t (userid, a) VALUES (5, 'x')", &[int(5)], None),
            ("INSERT INTO t (a, userid) VALUES ('x', '6')", &[int(6)], None),
            ("INSERT INTO t (a, `userid`, b) VALUES (NOW(), 7, CONCAT('a', 'b'))", &[int(7)], None),
            (
                "INSERT INTO t (a, userid, b) VALUES (CONCAT('a,b', f(1, 2)), 7, 'c)'), (g((1), 2), 7, 3), (1, 8, 3)",
                &[int(7), int(8)],
                None,
            ),
            ("INSERT INTO t (userid) VALUES (1), (2), (3)", &[int(1), int(2), int(3)], None),
            ("INSERT INTO t (userid) VALUE (1)", &[int(1)], None),
            ("INSERT INTO t (userid) VALUES ROW(1), ROW(2)", &[int(1), int(2)], None),
            ("INSERT IGNORE INTO db.t (userid) VALUES (1)", &[int(1)], None),
            ("INSERT LOW_PRIORITY t (userid) VALUES (1)", &[int(1)], None),
            ("INSERT INTO t PARTITION (p0) (a, userid) VALUES (1, 2)", &[int(2)], None),
            ("REPLACE INTO t (userid, a) VALUES (5, 1)", &[int(5)], None),
            ("REPLACE t (userid, a) VALUES (5, 1)", &[int(5)], None),
            ("INSERT INTO t SET userid = 5, a = 1", &[int(5)], None),
            ("INSERT INTO t SET a = 1, userid = '5'", &[int(5)], None),
            ("INSERT INTO t SET a = 1, userid = ?", &[param(0)], None),
            ("INSERT INTO t (a, b) VALUES (1, 2)", &[], None),
            ("INSERT INTO t () VALUES ()", &[], None),
            (
                "INSERT INTO t (userid, n) VALUES (5, 1) ON DUPLICATE KEY UPDATE n = n + 1",
                &[int(5)],
                None,
            ),
            (
                "INSERT INTO t (userid, n) VALUES (5, 1) AS new(u, m) ON DUPLICATE KEY UPDATE n = new.m",
                &[int(5)],
                None,
            ),
            (
                "INSERT INTO t (userid, n) VALUES (5, 1) ON DUPLICATE KEY UPDATE userid = VALUES(userid)",
                &[int(5)],
                Some(P::KeyAssignment),
            ),
            ("INSERT INTO t VALUES (5, 1)", &[], Some(P::InsertWithoutColumns)),
            ("INSERT t VALUES (5, 1)", &[], Some(P::InsertWithoutColumns)),
            ("INSERT INTO t (userid, a) SELECT userid, a FROM u WHERE userid = 5", &[int(5)], Some(P::InsertSelect)),
            ("INSERT INTO t SELECT * FROM u", &[], Some(P::InsertSelect)),
            ("INSERT INTO t (SELECT * FROM u)", &[], Some(P::InsertSelect)),
            ("INSERT INTO t (a) (SELECT a FROM u)", &[], Some(P::InsertSelect)),
            ("INSERT INTO t TABLE u", &[], Some(P::InsertSelect)),
            ("INSERT INTO t (userid) VALUES (5 + 1)", &[], Some(P::NotALiteral)),
            ("INSERT INTO t (userid) VALUES (f(5))", &[], Some(P::NotALiteral)),
            ("INSERT INTO t (userid) VALUES ((SELECT 1))", &[], Some(P::NotALiteral)),
            ("INSERT INTO t (userid) VALUES (NULL)", &[], Some(P::UnsupportedLiteral)),
            ("INSERT INTO t (userid) VALUES (DEFAULT)", &[], Some(P::UnsupportedLiteral)),
            ("INSERT INTO t (userid) VALUES (-1)", &[], Some(P::UnsupportedLiteral)),
            ("INSERT INTO t (userid) VALUES ('a\\'b')", &[], Some(P::EscapedString)),
            ("INSERT INTO t (a, userid) VALUES (1)", &[], Some(P::MalformedInsert)),
            ("INSERT INTO t (userid) VALUES ()", &[], Some(P::MalformedInsert)),
            ("INSERT INTO t SET userid = userid + 1", &[], Some(P::NotALiteral)),
        ]);
        let rows: String = (0..40)
            .map(|i| format!("({}, 'x')", i % 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO t (userid, a) VALUES {rows}");
        assert_eq!(sc(&sql).keys(), &[int(0), int(1), int(2)]);
        let rows: String = (0..20).map(|_| "(?, 'x')").collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO t (userid, a) VALUES {rows}");
        assert_eq!(sc(&sql).problem, Some(P::TooManyKeys));
    }

    #[test]
    fn updates_and_deletes() {
        check(&[
            ("UPDATE t SET a = 1 WHERE userid = 5", &[int(5)], None),
            (
                "UPDATE t SET a = 1, b = 'userid = 3' WHERE userid = 5 LIMIT 1",
                &[int(5)],
                None,
            ),
            (
                "UPDATE t SET a = userid + 1 WHERE userid = 5",
                &[int(5)],
                None,
            ),
            (
                "UPDATE t SET a = (b = 1 AND userid = 2) WHERE userid = 5",
                &[int(5)],
                None,
            ),
            (
                "UPDATE t SET userid = 6 WHERE userid = 5",
                &[int(5)],
                Some(P::KeyAssignment),
            ),
            (
                "UPDATE t SET a = 1, t.userid = 6 WHERE userid = 5",
                &[int(5)],
                Some(P::KeyAssignment),
            ),
            ("UPDATE t SET a = 1", &[], None),
            (
                "UPDATE a JOIN b ON b.id = a.id AND b.userid = 5 SET a.x = 1 WHERE a.userid = 5",
                &[int(5)],
                None,
            ),
            (
                "UPDATE LOW_PRIORITY IGNORE t SET a = 1 WHERE userid = 5",
                &[int(5)],
                None,
            ),
            ("DELETE FROM t WHERE userid = 5", &[int(5)], None),
            (
                "DELETE FROM t WHERE userid = 5 ORDER BY id LIMIT 10",
                &[int(5)],
                None,
            ),
            (
                "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t1.userid = 5",
                &[int(5)],
                None,
            ),
            ("DELETE FROM t WHERE userid > 5", &[], Some(P::NonEquality)),
            (
                "SELECT * FROM t WHERE userid = 5 FOR UPDATE",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 LOCK IN SHARE MODE",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 FOR SHARE NOWAIT",
                &[int(5)],
                None,
            ),
        ]);
    }

    #[test]
    fn clauses_joins_subqueries() {
        check(&[
            (
                "SELECT * FROM a JOIN b ON b.userid = 5 AND a.id = b.id",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM a JOIN b ON b.userid = 5, c WHERE c.x = 1",
                &[int(5)],
                None,
            ),
            (
                "SELECT a, COUNT(*) FROM t GROUP BY a HAVING userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM (SELECT * FROM t WHERE userid = 5) x",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE userid = 5) AND userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 UNION ALL SELECT * FROM u WHERE userid = 5",
                &[int(5)],
                None,
            ),
            (
                "(SELECT * FROM t WHERE userid = 5) UNION (SELECT * FROM u WHERE userid = 6)",
                &[int(5), int(6)],
                None,
            ),
            (
                "WITH c AS (SELECT * FROM t WHERE userid = 5) SELECT * FROM c",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND EXISTS (SELECT 1 FROM u WHERE a OR b)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE userid = 5) OR a",
                &[],
                Some(P::OrCondition),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 LIMIT 1; SELECT 2",
                &[int(5)],
                None,
            ),
            (
                "SELECT EXTRACT(YEAR FROM d) FROM t WHERE userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT CASE WHEN x THEN 1 ELSE 2 END FROM t WHERE userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE CASE WHEN x THEN 1 END = 1 AND userid = 5",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND a = (SELECT MAX(b) FROM u WHERE c = 1)",
                &[int(5)],
                None,
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND (a, b) IN ((1, 2), (3, 4))",
                &[int(5)],
                None,
            ),
            ("SELECT 1", &[], None),
            ("SELECT @@version", &[], None),
            ("SET NAMES utf8mb4", &[], None),
            ("SELECT * FROM t", &[], None),
        ]);
    }

    #[test]
    fn temporary_tables_are_recognised_after_comments() {
        for sql in [
            "CREATE TEMPORARY TABLE t (a INT)",
            "/* note */ create temporary table t (a INT)",
            "CREATE OR REPLACE TEMPORARY TABLE t (a INT)",
            "DROP TEMPORARY TABLE IF EXISTS t",
        ] {
            assert!(sc(sql).temporary, "{sql}");
        }
        for sql in [
            "CREATE TABLE t (a INT)",
            "CREATE TABLE temporary_x (a INT)",
            "SELECT * FROM t",
        ] {
            assert!(!sc(sql).temporary, "{sql}");
        }
    }

    #[test]
    fn every_union_branch_needs_its_key() {
        for sql in [
            "SELECT a FROM posts WHERE userid = 5 UNION SELECT a FROM messages",
            "SELECT a FROM posts UNION ALL SELECT a FROM messages WHERE userid = 5",
            "(SELECT a FROM posts WHERE userid = 5) UNION (SELECT a FROM messages)",
            "SELECT * FROM (SELECT a FROM posts WHERE userid = 5 EXCEPT SELECT a FROM m) d",
            "SELECT a FROM t WHERE userid = 5 INTERSECT SELECT a FROM m",
        ] {
            assert_eq!(sc(sql).problem, Some(KeyProblem::KeylessBranch), "{sql}");
        }
        for sql in [
            "SELECT a FROM posts WHERE userid = 5 UNION SELECT a FROM messages WHERE userid = 5",
            "(SELECT a FROM posts WHERE userid = 5) UNION (SELECT a FROM m WHERE userid = 5)",
            "SELECT a FROM posts WHERE userid = 5 UNION SELECT 1",
            "SELECT a FROM posts WHERE userid = 5 AND b IN (SELECT b FROM m)",
        ] {
            assert_eq!(sc(sql).problem, None, "{sql}");
        }
    }

    #[test]
    fn hints() {
        let cases: &[(&str, &[KeyRef<'_>])] = &[
            ("/* userid=123 */ SELECT * FROM t", &[int(123)]),
            ("/*userid = '123'*/ SELECT 1", &[int(123)]),
            ("/* USERID = 'abc' */ SELECT 1", &[text("abc")]),
            ("  /* owner_id=9 */SELECT 1", &[int(9)]),
            // Visible keys stay after the hint's: routing refuses a contradiction.
            (
                "/* userid=5 */ SELECT * FROM t WHERE userid = 6",
                &[int(5), int(6)],
            ),
            (
                "/* userid=5 */ SELECT * FROM t WHERE userid > 6 OR a",
                &[int(5)],
            ),
            ("-- note\n/* userid=5 */ SELECT 1", &[int(5)]),
            ("/* app=web */ /* userid=5 */ SELECT 1", &[int(5)]),
        ];
        for (sql, keys) in cases {
            let r = sc(sql);
            assert!(r.from_hint, "{sql}: {r:?}");
            assert_eq!(r.keys(), *keys, "{sql}: {r:?}");
            assert_eq!(r.problem, None, "{sql}: {r:?}");
        }
        // Not hints.
        for sql in [
            "SELECT /* userid=5 */ * FROM t",
            "/* userid */ SELECT 1",
            "/* user=5 */ SELECT 1",
            "/* parent_userid=5 */ SELECT 1",
            "/*! userid=5 */ SELECT 1",
            "/*+ MAX_EXECUTION_TIME(1) */ SELECT 1",
        ] {
            let r = sc(sql);
            assert!(!r.from_hint, "{sql}: {r:?}");
            assert_eq!(r.keys(), &[], "{sql}: {r:?}");
        }
        for sql in [
            "/* userid=abc */ SELECT 1",
            "/* userid=5, x=1 */ SELECT 1",
            "/* userid = -5 */ SELECT 1",
            "/* userid='a\\'b' */ SELECT 1",
            "/* userid='a''b' */ SELECT 1",
            "/* userid= */ SELECT * FROM t WHERE userid = 5",
        ] {
            let r = sc(sql);
            assert!(!r.from_hint, "{sql}: {r:?}");
            assert_eq!(r.problem, Some(P::MalformedHint), "{sql}: {r:?}");
        }
        let r = sc("/* userid=5 */ SELECT * FROM a JOIN b ON a.x = b.x WHERE b.y = ?");
        assert_eq!(r.placeholders, 1);
        assert_eq!(r.tables(), &[b"a".as_slice(), b"b"]);
    }

    #[test]
    fn unterminated_and_too_complex() {
        check(&[
            (
                "SELECT * FROM t WHERE userid = 5 AND a = 'x",
                &[int(5)],
                Some(P::Unterminated),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND a = \"x",
                &[int(5)],
                Some(P::Unterminated),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 AND `a = 1",
                &[int(5)],
                Some(P::Unterminated),
            ),
            (
                "SELECT * FROM t WHERE userid = 5 /* x",
                &[int(5)],
                Some(P::Unterminated),
            ),
            ("/* userid=5 SELECT 1", &[], Some(P::Unterminated)),
            (
                "SELECT * FROM t WHERE userid = 5 /*! AND a = 1",
                &[int(5)],
                Some(P::Unterminated),
            ),
            (
                "SELECT * FROM t WHERE userid = 'abc\\",
                &[],
                Some(P::Unterminated),
            ),
            ("SELECT * FROM t WHERE a = @'x", &[], Some(P::Unterminated)),
        ]);
        let deep = format!(
            "SELECT * FROM t WHERE {}userid = 5{}",
            "(".repeat(40),
            ")".repeat(40)
        );
        assert_eq!(sc(&deep).problem, Some(P::TooComplex));
        let ok = format!(
            "SELECT * FROM t WHERE {}userid = 5{}",
            "(".repeat(20),
            ")".repeat(20)
        );
        assert_eq!(sc(&ok).keys(), &[int(5)]);
        let hinted = format!(
            "/* userid=1 */ SELECT {}1{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        let r = sc(&hinted);
        assert_eq!((r.keys(), r.problem), (&[int(1)][..], None));
    }

    #[test]
    fn statement_kinds() {
        let cases = [
            ("SELECT 1", K::Select),
            ("  (SELECT 1) UNION (SELECT 2)", K::Select),
            ("/* c */ -- x\n select 1", K::Select),
            ("WITH c AS (SELECT 1) SELECT * FROM c", K::Select),
            (
                "WITH c AS (SELECT 1) DELETE FROM t WHERE userid = 1",
                K::Delete,
            ),
            ("WITH c AS (SELECT 1) UPDATE t SET a = 1", K::Update),
            ("TABLE t", K::Select),
            ("INSERT INTO t (a) VALUES (1)", K::Insert),
            ("REPLACE INTO t (a) VALUES (1)", K::Replace),
            ("UPDATE t SET a = 1", K::Update),
            ("DELETE FROM t", K::Delete),
            ("SET autocommit = 0", K::Set),
            ("SHOW TABLES", K::Show),
            ("USE db", K::Use),
            ("BEGIN", K::Begin),
            ("START TRANSACTION READ ONLY", K::Begin),
            ("START SLAVE", K::Other),
            ("COMMIT", K::Commit),
            ("ROLLBACK", K::Rollback),
            ("ROLLBACK WORK TO SAVEPOINT s", K::Savepoint),
            ("ROLLBACK TO s", K::Savepoint),
            ("SAVEPOINT s", K::Savepoint),
            ("RELEASE SAVEPOINT s", K::Savepoint),
            ("CREATE TABLE t (a INT)", K::Ddl),
            ("ALTER TABLE t ADD b INT", K::Ddl),
            ("DROP TABLE t", K::Ddl),
            ("TRUNCATE TABLE t", K::Ddl),
            ("RENAME TABLE a TO b", K::Ddl),
            ("CALL p(1)", K::Call),
            ("DO SLEEP(1)", K::Do),
            ("LOAD DATA INFILE 'f' INTO TABLE t", K::Load),
            ("LOCK TABLES t READ", K::Lock),
            ("UNLOCK TABLES", K::Lock),
            ("EXPLAIN SELECT * FROM t WHERE userid = 1", K::Explain),
            ("DESCRIBE t", K::Explain),
            ("desc t", K::Explain),
            ("KILL QUERY 5", K::Kill),
            ("GRANT SELECT ON *.* TO u", K::Other),
            ("XA START 'x'", K::Other),
            ("", K::Other),
            ("  ", K::Other),
        ];
        for (sql, kind) in cases {
            assert_eq!(sc(sql).kind, kind, "{sql}");
        }
        assert_eq!(
            sc("EXPLAIN SELECT * FROM t WHERE userid = 1").keys(),
            &[int(1)]
        );
        assert_eq!(
            sc("EXPLAIN UPDATE t SET a = 1 WHERE userid = 2").keys(),
            &[int(2)]
        );
        let r = sc("SELECT 1; UPDATE t SET userid = 2");
        assert_eq!(
            (r.kind, r.multi_statement, r.problem),
            (K::Select, true, Some(P::KeyAssignment))
        );
        let r = sc("SELECT 1;  ");
        assert!(!r.multi_statement);
    }

    fn tables(sql: &str) -> Vec<String> {
        sc(sql)
            .tables()
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect()
    }

    #[test]
    fn table_names() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT * FROM users WHERE userid = 1", &["users"]),
            ("SELECT * FROM users u WHERE u.userid = 1", &["users"]),
            ("SELECT * FROM users AS u, posts p WHERE 1", &["users", "posts"]),
            ("SELECT * FROM db.users", &["users"]),
            ("SELECT * FROM `db`.`my table` x", &["my table"]),
            (
                "SELECT * FROM a LEFT JOIN b ON a.id = b.id INNER JOIN c USING (id) CROSS JOIN d NATURAL JOIN e STRAIGHT_JOIN f",
                &["a", "b", "c", "d", "e", "f"],
            ),
            ("SELECT * FROM a JOIN b ON a.x = b.x, c", &["a", "b", "c"]),
            ("SELECT * FROM (SELECT * FROM inner_t) x JOIN y ON 1", &["inner_t", "y"]),
            ("SELECT * FROM (a JOIN b ON a.x = b.x)", &["a", "b"]),
            ("SELECT * FROM t1 USE INDEX (i1) JOIN t2 FORCE INDEX (i2) ON 1", &["t1", "t2"]),
            ("SELECT * FROM t PARTITION (p0) x WHERE 1", &["t"]),
            ("SELECT * FROM t WHERE a IN (SELECT b FROM u)", &["t", "u"]),
            ("SELECT EXTRACT(YEAR FROM d), TRIM(BOTH 'x' FROM s) FROM t", &["t"]),
            ("SELECT 1 FROM t1 UNION SELECT 2 FROM t2", &["t1", "t2"]),
            ("INSERT INTO t (a) VALUES (1)", &["t"]),
            ("INSERT IGNORE INTO db.t (a) SELECT a FROM u", &["t", "u"]),
            ("INSERT t SET a = 1", &["t"]),
            ("REPLACE INTO t (a) VALUES (1)", &["t"]),
            ("UPDATE t SET a = 1 WHERE b = 2", &["t"]),
            ("UPDATE t1 AS a, t2 b SET a.x = b.x", &["t1", "t2"]),
            ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.x = 1", &["t1", "t2"]),
            ("DELETE FROM t WHERE a = 1", &["t"]),
            ("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.id", &["t1", "t2"]),
            ("DELETE FROM t1 USING t1 JOIN t2 ON t1.id = t2.id", &["t1", "t2"]),
            ("TRUNCATE TABLE t", &["t"]),
            ("TRUNCATE t", &["t"]),
            ("LOCK TABLES t1 READ, t2 AS x WRITE, t3 LOW_PRIORITY WRITE", &["t1", "t2", "t3"]),
            ("DROP TABLE IF EXISTS a, b", &["a", "b"]),
            ("CREATE TABLE IF NOT EXISTS t (userid BIGINT, a INT)", &["t"]),
            ("RENAME TABLE a TO b", &["a", "b"]),
            ("DESCRIBE t", &["t"]),
            ("TABLE t", &["t"]),
            ("SELECT * FROM t1, t1", &["t1"]),
            ("SELECT * FROM start JOIN `value` ON 1", &["start", "value"]),
            ("SELECT 1", &[]),
            ("SELECT 'FROM x' FROM t -- FROM y", &["t"]),
        ];
        for (sql, want) in cases {
            assert_eq!(tables(sql), *want, "{sql}");
        }
        let r = sc("SELECT * FROM a, b, c, d, e, f, g, h, i, j");
        assert_eq!(r.tables().len(), MAX_TABLES);
        assert!(r.tables_truncated);
    }

    #[test]
    fn problem_messages_are_distinct_and_helpful() {
        let all = [
            P::NonEquality,
            P::NotALiteral,
            P::UnsupportedLiteral,
            P::NotConjunct,
            P::OrCondition,
            P::KeyAssignment,
            P::InsertWithoutColumns,
            P::InsertSelect,
            P::MalformedInsert,
            P::EscapedString,
            P::TooManyKeys,
            P::Unterminated,
            P::MalformedHint,
            P::TooComplex,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.message().len() > 30, "{a:?}");
            assert_eq!(a.to_string(), a.message());
            for b in &all[i + 1..] {
                assert_ne!(a.message(), b.message());
            }
        }
    }

    #[test]
    fn every_keyword_is_found_in_any_case() {
        assert!(KW_TEXT.len() < usize::from(NO_KW));
        for (i, text) in KW_TEXT.iter().enumerate() {
            assert_eq!(
                keyword(text),
                Some(KW_ALL[i]),
                "{}",
                String::from_utf8_lossy(text)
            );
            let upper = text.to_ascii_uppercase();
            assert_eq!(keyword(&upper), Some(KW_ALL[i]));
        }
        for w in [
            &b"selec"[..],
            b"selects",
            b"userid",
            b"a",
            b"",
            b"x_y",
            b"s\xe9lect",
        ] {
            assert_eq!(keyword(w), None);
        }
    }

    #[test]
    fn key_columns() {
        let c = KeyColumns::new([" UserID ", "", "tenant"]);
        assert!(c.contains(b"userid"));
        assert!(c.contains(b"USERID"));
        assert!(c.contains(b"Tenant"));
        assert!(!c.contains(b"user"));
        assert!(!c.contains(b""));
        let none = KeyColumns::new(Vec::<String>::new());
        assert_eq!(
            checked_scan(b"SELECT * FROM t WHERE userid = 1", &none).keys(),
            &[]
        );
    }

    use crate::test_rng::Rng;

    #[test]
    fn random_input_never_panics() {
        const PIECES: &[&[u8]] = &[
            b"SELECT ",
            b"INSERT ",
            b"INTO ",
            b"VALUES ",
            b"VALUE ",
            b"UPDATE ",
            b"SET ",
            b"DELETE ",
            b"FROM ",
            b"WHERE ",
            b"JOIN ",
            b"ON ",
            b"AND ",
            b"OR ",
            b"NOT ",
            b"IN ",
            b"IS ",
            b"NULL ",
            b"BETWEEN ",
            b"CASE ",
            b"WHEN ",
            b"THEN ",
            b"END ",
            b"WITH ",
            b"AS ",
            b"UNION ",
            b"HAVING ",
            b"DUPLICATE KEY ",
            b"TABLE ",
            b"LOCK TABLES ",
            b"EXPLAIN ",
            b"USING ",
            b"PARTITION ",
            b"ROW",
            b"userid",
            b"t.userid",
            b"`userid`",
            b"parent_userid",
            b" ",
            b"\n",
            b"\t",
            b"'",
            b"\"",
            b"`",
            b"\\",
            b"''",
            b"/*",
            b"*/",
            b"/*!",
            b"/*M!",
            b"--",
            b"-- ",
            b"#",
            b"?",
            b"(",
            b")",
            b",",
            b".",
            b";",
            b"=",
            b"<=>",
            b"<",
            b">",
            b"!=",
            b"||",
            b"&&",
            b"+",
            b"-",
            b"@",
            b"@@",
            b"0",
            b"5",
            b"12345",
            b"18446744073709551616",
            b"1.5",
            b"0x1F",
            b"'123'",
            b"'abc'",
            b"\xff",
            b"\x00",
            b"\xc3\xa9",
            b"/* userid=5 */",
            b"/* userid=",
            b"x",
        ];
        let c = cols();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut buf = Vec::with_capacity(512);
        for _ in 0..100_000 {
            buf.clear();
            let n = rng.below(40);
            for _ in 0..n {
                if rng.below(8) == 0 {
                    buf.push(rng.next() as u8);
                } else {
                    buf.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                }
            }
            let r = checked_scan(&buf, &c);
            assert!(r.keys().len() <= MAX_KEYS);
            assert!(r.tables().len() <= MAX_TABLES);
            if r.from_hint {
                assert!(!matches!(
                    r.problem,
                    Some(
                        KeyProblem::MalformedHint
                            | KeyProblem::NonEquality
                            | KeyProblem::OrCondition
                    )
                ));
            }
            for k in r.keys() {
                let mut b = [0u8; 20];
                if let KeyRef::Literal(v) = k {
                    let _ = v.canonical(&mut b);
                }
            }
        }
    }

    #[test]
    fn large_inputs_are_linear() {
        let mut sql = String::from("SELECT * FROM t WHERE a IN (");
        for i in 0..50_000 {
            sql.push_str(&format!("{i},"));
        }
        sql.push_str("0) AND userid = 9");
        assert_eq!(sc(&sql).keys(), &[int(9)]);
        let nested = "(".repeat(100_000) + &")".repeat(100_000);
        assert_eq!(sc(&nested).problem, Some(P::TooComplex));
        let opens = "(".repeat(100_000);
        let _ = sc(&opens);
        let cases = "CASE ".repeat(10_000);
        let _ = sc(&format!("SELECT * FROM t WHERE {cases}"));
    }
}
