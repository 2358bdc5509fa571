//! The shard-key scanner's fast path: a small recognizer for the common, simple statement
//! shapes that returns exactly the [`Scan`] the full scanner ([`super::key`]) would
//! return, or gives up (`None`) at the first thing it is not sure about; [`super::scan`]
//! then runs the full scanner. It never decides anything the full scanner would not.
//!
//! What it owns (one statement, optionally after one leading `/* … */` comment, which may
//! be a key hint, and followed by `;`s):
//!
//! - `SELECT <list> [FROM <tables> [WHERE <condition>]] [<tail>]`
//! - `UPDATE <tables> SET col = <expr>, … [WHERE <condition>] [<tail>]`
//! - `DELETE FROM <tables> [WHERE <condition>] [<tail>]`
//! - `INSERT|REPLACE [INTO] t (col, …) VALUES|VALUE (<expr>, …), …`
//!
//! where `<tables>` are `t [[AS] alias]` joined by commas or `[LEFT|INNER|…] JOIN … [ON
//! <condition>]`; a `<condition>` is conjuncts joined by AND, each either a key conjunct
//! `key = literal` / `key IN (literal, …)` (a literal is an unsigned integer, a plain
//! string or `?`) or a plain expression that does not mention a key column; `<tail>` is
//! ORDER BY, GROUP BY, LIMIT, FOR UPDATE, LOCK IN SHARE MODE. A plain expression is made
//! of names, numbers, plain strings, `?`, comparison and arithmetic operators, balanced
//! parentheses, and the keywords NULL, TRUE, FALSE, DEFAULT, IS, NOT, LIKE, IN.
//!
//! Everything else gives up: other comments, backticks, escaped strings, `@`, `/`, OR,
//! XOR, BETWEEN, CASE, subqueries, HAVING, UNION, USING, INSERT … SET / SELECT / ON
//! DUPLICATE KEY, several statements, and any mention of a key column that is not one
//! of the shapes above (these are the cases where the full scanner reports a problem or
//! needs its frame stack). Its tokens are those of the full lexer, checked by a test.

use super::key::{
    self, skip_spaces, Hint, KeyColumns, KeyRef, Kw, Op, Scan, Span, MAX_INSERT_KEYS, T,
};

/// Parentheses nest at most this deep in a fast-path expression.
const MAX_PARENS: u32 = 8;

/// Scans `sql` if it has one of the simple shapes, with the same result as the full
/// scanner; `None` when it does not (the caller then runs the full scanner).
#[cfg(test)]
pub(super) fn scan<'a>(sql: &'a [u8], cols: &KeyColumns) -> Option<Scan<'a>> {
    let mut out = Scan::empty();
    scan_into(sql, cols, &mut out).map(|()| out)
}

/// [`scan`] into `out`, which must be [`Scan::empty`]; after `None` it holds a partial result.
#[inline(always)]
pub(super) fn scan_into<'a>(sql: &'a [u8], cols: &KeyColumns, out: &mut Scan<'a>) -> Option<()> {
    let mut f = Fast {
        lx: Lexer { s: sql, pos: 0 },
        cols,
        out,
        param: 0,
    };
    let hinted = f.leading_hint()?;
    let T::Kw(first, _) = f.next()? else {
        return None;
    };
    f.out.kind = first.statement_kind();
    let end = match first {
        Kw::Select => f.select()?,
        Kw::Update => f.update()?,
        Kw::Delete => f.delete()?,
        Kw::Insert | Kw::Replace => f.insert()?,
        _ => return None,
    };
    // Only `;`s may follow: another statement is the full scanner's business.
    let mut t = end;
    while matches!(t, T::Op(Op::Semi)) {
        t = f.next()?;
    }
    if !matches!(t, T::End) {
        return None;
    }
    if hinted {
        // As the full scanner: the hint's key first, then those of the statement.
        f.out.from_hint = true;
        f.out.problem = None;
    }
    Some(())
}

// ---------------------------------------------------------------------------------------
// Lexer: the full lexer's tokens for the plain subset of SQL, `None` for anything else.

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

const fn word_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_';
        i += 1;
    }
    t
}

/// Bytes of a fast-path identifier: ASCII letters, digits, `_`.
static WORD: [bool; 256] = word_table();

#[inline(always)]
fn word_byte(b: u8) -> bool {
    WORD[usize::from(b)]
}

impl<'a> Lexer<'a> {
    #[inline(always)]
    fn text(&self, sp: Span) -> &'a [u8] {
        sp.of(self.s)
    }

    /// Index of the first byte at or after `i` that is not a word byte.
    #[inline(always)]
    fn word_end(&self, mut i: usize) -> usize {
        while self.s.get(i).is_some_and(|&c| word_byte(c)) {
            i += 1;
        }
        i
    }

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        let s = self.s;
        let (i, b) = skip_spaces(s, self.pos);
        let Some(b) = b else {
            self.pos = i;
            return Some(T::End);
        };
        let n1 = s.get(i + 1).copied();
        let (t, len) = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => return self.word(i),
            b'0'..=b'9' => return self.number(i),
            b'\'' | b'"' => return self.string(i, b),
            b'?' => (T::Param, 1),
            b'(' => (T::Op(Op::LParen), 1),
            b')' => (T::Op(Op::RParen), 1),
            b',' => (T::Op(Op::Comma), 1),
            b';' => (T::Op(Op::Semi), 1),
            b'=' => (T::Op(Op::Eq), 1),
            b'+' => (T::Op(Op::Plus), 1),
            b'*' => (T::Op(Op::Other), 1),
            b'<' => match (n1, s.get(i + 2)) {
                (Some(b'='), Some(b'>')) => (T::Op(Op::NullEq), 3),
                (Some(b'='), _) => (T::Op(Op::Le), 2),
                (Some(b'>'), _) => (T::Op(Op::Ne), 2),
                (Some(b'<'), _) => return None,
                _ => (T::Op(Op::Lt), 1),
            },
            b'>' => match n1 {
                Some(b'=') => (T::Op(Op::Ge), 2),
                Some(b'>') => return None,
                _ => (T::Op(Op::Gt), 1),
            },
            b'!' if n1 == Some(b'=') => (T::Op(Op::Ne), 2),
            // `--` may start a comment, `->` is JSON: not ours.
            b'-' if !matches!(n1, Some(b'-' | b'>')) => (T::Op(Op::Minus), 1),
            _ => return None,
        };
        self.pos = i + len;
        Some(t)
    }

    /// A keyword or a name; `a.b.c` is the name `c`.
    #[inline(always)]
    fn word(&mut self, start: usize) -> Option<T> {
        let mut end = self.word_end(start + 1);
        let mut sp = key::span(start, end);
        let mut qualified = false;
        while self.s.get(end) == Some(&b'.') {
            let part = end + 1;
            if !self.s.get(part).is_some_and(|&c| word_byte(c)) {
                return None;
            }
            end = self.word_end(part + 1);
            sp = key::span(part, end);
            qualified = true;
        }
        // `$` and non-ASCII bytes continue an identifier in MySQL: not ours. Neither is a
        // dot or comment after the word (`a . b`, `a/**/.b` are one qualified name).
        if self.s.get(end).is_some_and(|&c| key::is_ident(c)) {
            return None;
        }
        let (after, next) = skip_spaces(self.s, end);
        if matches!(next, Some(b'.' | b'/' | b'#'))
            || (next == Some(b'-') && self.s.get(after + 1) == Some(&b'-'))
        {
            return None;
        }
        // The next token starts after the spaces: spare skipping them again.
        self.pos = after;
        if !qualified {
            if let Some(k) = key::keyword(self.s.get(start..end).unwrap_or_default()) {
                return Some(T::Kw(k, sp));
            }
        }
        Some(T::Name(sp))
    }

    /// A run of digits (not `1.5`, `1e3`, `0x1F`, `1abc`).
    #[inline(always)]
    fn number(&mut self, start: usize) -> Option<T> {
        let mut end = start + 1;
        while self.s.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if self
            .s
            .get(end)
            .is_some_and(|&c| c == b'.' || key::is_ident(c))
        {
            return None;
        }
        self.pos = end;
        Some(T::Num(key::span(start, end)))
    }

    /// A closed string without backslashes or doubled quotes.
    #[inline(always)]
    fn string(&mut self, start: usize, q: u8) -> Option<T> {
        let body = start + 1;
        let rest = self.s.get(body..)?;
        let close = body + rest.iter().position(|&c| c == q || c == b'\\')?;
        if self.s.get(close) != Some(&q) || self.s.get(close + 1) == Some(&q) {
            return None;
        }
        self.pos = close + 1;
        Some(T::Str(key::span(body, close), false))
    }
}

// ---------------------------------------------------------------------------------------
// The recognizer: one method per clause, each returning the token that ended it.

struct Fast<'a, 'c, 'o> {
    lx: Lexer<'a>,
    cols: &'c KeyColumns,
    out: &'o mut Scan<'a>,
    /// Index of the last `?` read.
    param: u16,
}

fn is_kw(t: T, k: Kw) -> bool {
    matches!(t, T::Kw(x, _) if x == k)
}

/// Keywords that may appear inside a plain expression (the full scanner ignores them
/// there).
fn value_keyword(k: Kw) -> bool {
    matches!(
        k,
        Kw::Null | Kw::True | Kw::False | Kw::Default | Kw::Is | Kw::Not | Kw::Like | Kw::In
    )
}

/// Tokens that may end a key conjunct `key = 5`: where the full scanner's condition
/// boundary and what this recognizer accepts next agree. `on`: an ON condition.
fn cond_end(t: T, on: bool) -> bool {
    match t {
        T::End | T::Op(Op::Semi) => true,
        T::Op(Op::Comma) => on,
        T::Kw(k, _) => {
            matches!(
                k,
                Kw::And | Kw::Order | Kw::Group | Kw::Limit | Kw::For | Kw::Lock
            ) || (on
                && matches!(
                    k,
                    Kw::Join
                        | Kw::StraightJoin
                        | Kw::Inner
                        | Kw::Cross
                        | Kw::Left
                        | Kw::Right
                        | Kw::Natural
                        | Kw::Where
                        | Kw::Set
                ))
        }
        _ => false,
    }
}

impl<'a> Fast<'a, '_, '_> {
    /// The next token; counts `?` placeholders.
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        let t = self.lx.next()?;
        if matches!(t, T::Param) {
            self.param = self.out.placeholders;
            self.out.placeholders = self.param.saturating_add(1);
        }
        Some(t)
    }

    fn is_key(&self, t: T) -> bool {
        matches!(t, T::Name(n) if self.cols.contains(self.lx.text(n)))
    }

    fn add_key(&mut self, k: KeyRef<'a>) {
        if let Err(p) = self.out.push_key(k) {
            self.out.problem.get_or_insert(p);
        }
    }

    /// A key literal: an unsigned integer, a plain string that is no other number, `?`.
    fn key_value(&self, t: T) -> Option<KeyRef<'a>> {
        match t {
            // The lexer's numbers are all digits.
            T::Num(n) => Some(KeyRef::Literal(key::digits_value(self.lx.text(n)))),
            T::Str(c, escaped) => key::string_value(self.lx.text(c), escaped)
                .ok()
                .map(KeyRef::Literal),
            T::Param => Some(KeyRef::Param(self.param)),
            _ => None,
        }
    }

    /// At most one leading `/* … */` comment; returns whether it is a key hint.
    // Inlined on purpose: left to the codegen-unit split, it stopped being inlined into
    // `router::scan_in` when modules were added elsewhere (+14 instructions per statement,
    // measured with the callgrind recipe of docs/benchmarks.md).
    #[inline]
    fn leading_hint(&mut self) -> Option<bool> {
        let s = self.lx.s;
        let mut i = 0;
        while s.get(i).is_some_and(|&c| c <= b' ') {
            i += 1;
        }
        if s.get(i) != Some(&b'/') || s.get(i + 1) != Some(&b'*') {
            return Some(false);
        }
        // `/*! … */` and `/*M! … */` hold SQL.
        if s.get(i + 2) == Some(&b'!')
            || (s.get(i + 2) == Some(&b'M') && s.get(i + 3) == Some(&b'!'))
        {
            return None;
        }
        let end = key::comment_end(s, i + 2)?;
        self.lx.pos = end;
        match key::parse_hint(s.get(i + 2..end - 2)?, self.cols) {
            Hint::Comment => Some(false),
            Hint::Key(v) => {
                self.add_key(KeyRef::Literal(v));
                Some(true)
            }
            Hint::Malformed => None,
        }
    }

    /// A plain expression, up to (and returning) the first keyword other than a value
    /// keyword, `,`, `)`, `;` or the end, outside parentheses. `keys`: key columns may
    /// appear (where the full scanner ignores them).
    fn expr(&mut self, keys: bool) -> Option<T> {
        self.expr_rest(0, keys)
    }

    /// [`Fast::expr`] whose first token, `t`, was read already.
    fn expr_after(&mut self, t: T, keys: bool) -> Option<T> {
        let depth = match t {
            T::Name(_) if !keys && self.is_key(t) => return None,
            T::Kw(k, _) if value_keyword(k) => 0,
            T::Op(Op::LParen) => 1,
            T::Kw(..) | T::Op(Op::Comma | Op::RParen | Op::Semi) | T::End => return Some(t),
            T::Name(_) | T::Num(_) | T::Str(..) | T::Param | T::Op(_) => 0,
            T::Var | T::Bad => return None,
        };
        self.expr_rest(depth, keys)
    }

    /// The rest of an expression (see [`Fast::expr`]) inside `depth` parentheses: the
    /// lexer's work inlined, with what an expression ignores (spaces, names, numbers,
    /// strings, `?`, operators, parentheses and commas inside them) passed over here.
    fn expr_rest(&mut self, mut depth: u32, keys: bool) -> Option<T> {
        let s = self.lx.s;
        let mut i = self.lx.pos;
        loop {
            let Some(&b) = s.get(i) else {
                self.lx.pos = i;
                return (depth == 0).then_some(T::End);
            };
            match b {
                0..=b' ' => i += 1,
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    let t = self.lx.word(i)?;
                    match t {
                        T::Kw(k, _) if !value_keyword(k) => return (depth == 0).then_some(t),
                        T::Name(_) if !keys && self.is_key(t) => return None,
                        _ => {}
                    }
                    i = self.lx.pos;
                }
                b'0'..=b'9' => {
                    self.lx.number(i)?;
                    i = self.lx.pos;
                }
                b'\'' | b'"' => {
                    self.lx.string(i, b)?;
                    i = self.lx.pos;
                }
                b'?' => {
                    self.out.placeholders = self.out.placeholders.saturating_add(1);
                    i += 1;
                }
                b'(' => {
                    depth += 1;
                    if depth > MAX_PARENS {
                        return None;
                    }
                    i += 1;
                }
                b')' | b',' if depth > 0 => {
                    depth -= u32::from(b == b')');
                    i += 1;
                }
                b')' | b',' | b';' if depth == 0 => {
                    self.lx.pos = i + 1;
                    return Some(T::Op(match b {
                        b')' => Op::RParen,
                        b',' => Op::Comma,
                        _ => Op::Semi,
                    }));
                }
                b';' => return None,
                _ => {
                    // Operators: the lexer knows which ones are ours.
                    self.lx.pos = i;
                    if !matches!(self.lx.next()?, T::Op(_)) {
                        return None;
                    }
                    i = self.lx.pos;
                }
            }
        }
    }

    /// A WHERE (or, `on`, ON) condition: conjuncts joined by AND. Returns the token after it.
    fn condition(&mut self, on: bool) -> Option<T> {
        loop {
            let t = self.next()?;
            let end = if self.is_key(t) {
                self.key_conjunct(on)?
            } else {
                self.expr_after(t, false)?
            };
            if !is_kw(end, Kw::And) {
                return Some(end);
            }
        }
    }

    /// After a key column at the start of a conjunct: `= literal` or `IN (literal, …)`,
    /// then the end of the conjunct. Returns the token after it.
    fn key_conjunct(&mut self, on: bool) -> Option<T> {
        match self.next()? {
            T::Op(Op::Eq | Op::NullEq) => {
                let v = self.next()?;
                let k = self.key_value(v)?;
                let end = self.next()?;
                if !cond_end(end, on) {
                    return None;
                }
                self.add_key(k);
                Some(end)
            }
            T::Kw(Kw::In, _) => {
                if !matches!(self.next()?, T::Op(Op::LParen)) {
                    return None;
                }
                loop {
                    let v = self.next()?;
                    let k = self.key_value(v)?;
                    self.add_key(k);
                    match self.next()? {
                        T::Op(Op::Comma) => {}
                        T::Op(Op::RParen) => break,
                        _ => return None,
                    }
                }
                let end = self.next()?;
                cond_end(end, on).then_some(end)
            }
            _ => None,
        }
    }

    /// Table references: `t [[AS] alias] [ON condition]`, separated by commas and joins.
    /// Returns the token after them.
    fn tables(&mut self) -> Option<T> {
        loop {
            let T::Name(name) = self.next()? else {
                return None;
            };
            self.out.push_table(self.lx.text(name));
            let mut t = self.next()?;
            if is_kw(t, Kw::As) {
                t = self.next()?;
                if !matches!(t, T::Name(_)) {
                    return None;
                }
                t = self.next()?;
            } else if matches!(t, T::Name(_)) {
                t = self.next()?;
            }
            if is_kw(t, Kw::On) {
                t = self.condition(true)?;
            }
            let mut join_words = false;
            while let T::Kw(
                Kw::Inner | Kw::Cross | Kw::Left | Kw::Right | Kw::Natural | Kw::Outer,
                _,
            ) = t
            {
                join_words = true;
                t = self.next()?;
            }
            match t {
                T::Kw(Kw::Join | Kw::StraightJoin, _) => {}
                T::Op(Op::Comma) if !join_words => {}
                _ if join_words => return None,
                _ => return Some(t),
            }
        }
    }

    /// ORDER BY, GROUP BY, LIMIT, FOR UPDATE …: plain expressions where key columns are
    /// ignored. Returns the token after them.
    fn tail(&mut self, mut t: T) -> Option<T> {
        // Only these leave the condition (DESC, UPDATE would not).
        if !matches!(
            t,
            T::Kw(Kw::Order | Kw::Group | Kw::Limit | Kw::For | Kw::Lock, _)
        ) {
            return Some(t);
        }
        while let T::Kw(
            Kw::Order | Kw::Group | Kw::Limit | Kw::Desc | Kw::For | Kw::Update | Kw::Lock,
            _,
        ) = t
        {
            // Comma-separated expressions after the keyword.
            loop {
                t = self.expr(true)?;
                if !matches!(t, T::Op(Op::Comma)) {
                    break;
                }
            }
        }
        Some(t)
    }

    /// After SELECT.
    fn select(&mut self) -> Option<T> {
        let mut t;
        loop {
            t = self.expr(true)?;
            if !(matches!(t, T::Op(Op::Comma)) || is_kw(t, Kw::As)) {
                break;
            }
        }
        if !is_kw(t, Kw::From) {
            return Some(t);
        }
        let t = self.tables()?;
        self.where_and_tail(t)
    }

    /// An optional WHERE condition at `t`, then the tail.
    fn where_and_tail(&mut self, mut t: T) -> Option<T> {
        if is_kw(t, Kw::Where) {
            t = self.condition(false)?;
        }
        self.tail(t)
    }

    /// After UPDATE.
    fn update(&mut self) -> Option<T> {
        if !is_kw(self.tables()?, Kw::Set) {
            return None;
        }
        let mut t;
        loop {
            // `col = expr`: assigning a key column is a problem, for the full scanner.
            let target = self.next()?;
            if !matches!(target, T::Name(_)) || self.is_key(target) {
                return None;
            }
            if !matches!(self.next()?, T::Op(Op::Eq)) {
                return None;
            }
            t = self.expr(true)?;
            if !matches!(t, T::Op(Op::Comma)) {
                break;
            }
        }
        self.where_and_tail(t)
    }

    /// After DELETE.
    fn delete(&mut self) -> Option<T> {
        if !is_kw(self.next()?, Kw::From) {
            return None;
        }
        let t = self.tables()?;
        self.where_and_tail(t)
    }

    /// After INSERT or REPLACE: the table, the column list, the rows.
    fn insert(&mut self) -> Option<T> {
        let mut t = self.next()?;
        if is_kw(t, Kw::Into) {
            t = self.next()?;
        }
        let T::Name(table) = t else {
            return None;
        };
        self.out.push_table(self.lx.text(table));
        // Positions of the key columns in the column list.
        let mut keys = [0u16; MAX_INSERT_KEYS];
        let mut n_keys = 0;
        if !matches!(self.next()?, T::Op(Op::LParen)) {
            return None;
        }
        let mut col = 0u16;
        loop {
            let c = self.next()?;
            if !matches!(c, T::Name(_)) {
                return None;
            }
            if self.is_key(c) {
                // More key columns than the full scanner follows: a problem there.
                *keys.get_mut(n_keys)? = col;
                n_keys += 1;
            }
            match self.next()? {
                T::Op(Op::Comma) => col = col.saturating_add(1),
                T::Op(Op::RParen) => break,
                _ => return None,
            }
        }
        let keys = keys.get(..n_keys)?;
        let last_key = keys.iter().max().copied();
        if !matches!(self.next()?, T::Kw(Kw::Values | Kw::Value, _)) {
            return None;
        }
        loop {
            if !matches!(self.next()?, T::Op(Op::LParen)) {
                return None;
            }
            let mut col = 0u16;
            loop {
                let end = if keys.contains(&col) {
                    let t = self.next()?;
                    let k = self.key_value(t)?;
                    let end = self.next()?;
                    if !matches!(end, T::Op(Op::Comma | Op::RParen)) {
                        return None;
                    }
                    self.add_key(k);
                    end
                } else {
                    self.expr(true)?
                };
                match end {
                    T::Op(Op::Comma) => col = col.saturating_add(1),
                    T::Op(Op::RParen) => break,
                    _ => return None,
                }
            }
            // A row without a value at a key column's position.
            if last_key.is_some_and(|p| col < p) {
                return None;
            }
            let t = self.next()?;
            if !matches!(t, T::Op(Op::Comma)) {
                return Some(t);
            }
        }
    }
}

#[cfg(test)]
mod tests;
