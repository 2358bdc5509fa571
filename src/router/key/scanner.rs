//! The scanner: one pass over the lexer's tokens that finds the statement's kind, tables
//! and shard-key values, with a frame per parenthesis level (see [`super::scan`]).
//! This file holds the frame types, the scanner's state and its main loop; the children
//! handle one kind of token each: `frames.rs` punctuation and AND/OR (opening and closing
//! frames), `clauses.rs` keywords, `keys.rs` identifiers and key-column mentions.

mod clauses;
mod frames;
mod keys;

use super::*;
// ---------------------------------------------------------------------------------------
// The scanner: a stack of frames (query blocks, parentheses, CASE, INSERT lists).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) enum FrameKind {
    /// A query block: the statement itself, a subquery, a derived table or parenthesised join.
    Query,
    /// A parenthesised expression or function arguments.
    Expr,
    Case,
    InsertColumns,
    Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) enum AssignKind {
    Update,
    InsertSet,
    OnDuplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(in crate::router) enum Clause {
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
    pub(in crate::router) fn is_tables(self) -> bool {
        matches!(
            self,
            Clause::TablesExpect | Clause::TablesAfter | Clause::TablesAfterAs | Clause::TablesDone
        )
    }

    pub(in crate::router) fn assign_kind(self) -> Option<AssignKind> {
        match self {
            Clause::AssignUpdate => Some(AssignKind::Update),
            Clause::AssignInsertSet => Some(AssignKind::InsertSet),
            Clause::AssignOnDuplicate => Some(AssignKind::OnDuplicate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(in crate::router) struct Frame {
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
    pub(in crate::router) const ZERO: Frame = Frame::new(FrameKind::Query, Clause::Start, 0, 0);

    pub(in crate::router) const fn new(
        kind: FrameKind,
        clause: Clause,
        open_ti: u32,
        key_start: u8,
    ) -> Self {
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

    pub(in crate::router) fn in_cond_now(&self) -> bool {
        match self.kind {
            FrameKind::Query => self.clause == Clause::Cond,
            FrameKind::Expr | FrameKind::Case => self.in_cond,
            FrameKind::InsertColumns | FrameKind::Row => false,
        }
    }

    pub(in crate::router) fn conj_now(&self) -> bool {
        match self.kind {
            FrameKind::Query => self.clause == Clause::Cond && self.conj,
            FrameKind::Expr => self.conj,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(in crate::router) struct Prev {
    ti: u32,
    t: T,
    /// A key column name.
    key: bool,
    /// The index of a `?`.
    param: u16,
}

pub(in crate::router) const NO_PREV: Prev = Prev {
    ti: 0,
    t: T::End,
    key: false,
    param: 0,
};

pub(in crate::router) struct Scanner<'a, 'c, 'o> {
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
    pub(in crate::router) fn new(
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
    pub(in crate::router) fn end_branch(&mut self, last: bool) {
        let f = *self.top();
        let keyless = self.tables_named > f.branch_tables && self.keys_found <= f.branch_keys;
        if keyless && (f.set_op || !last) {
            self.problem(KeyProblem::KeylessBranch);
        }
    }

    /// Starts a branch after a set operator in the top frame.
    pub(in crate::router) fn start_branch(&mut self) {
        self.end_branch(false);
        let (tables, keys) = (self.tables_named, self.keys_found);
        let f = self.top_mut();
        f.set_op = true;
        f.branch_keys = keys;
        f.branch_tables = tables;
    }

    pub(in crate::router) fn problem(&mut self, p: KeyProblem) {
        if self.out.problem.is_none() {
            self.out.problem = Some(p);
        }
    }

    pub(in crate::router) fn add_key(&mut self, k: KeyRef<'a>) {
        self.keys_found = self.keys_found.saturating_add(1);
        if let Err(p) = self.out.push_key(k) {
            self.problem(p);
        }
    }

    /// Drops the keys found since `start` (an OR or a non-conjunct context discards them).
    pub(in crate::router) fn discard_keys(&mut self, start: u8, p: KeyProblem) {
        if self.out.key_len > start {
            self.out.key_len = start;
            self.problem(p);
        }
    }

    pub(in crate::router) fn top(&self) -> &Frame {
        &self.frames[self.depth]
    }

    pub(in crate::router) fn top_mut(&mut self) -> &mut Frame {
        &mut self.frames[self.depth]
    }

    pub(in crate::router) fn next_is(&self, op: Op) -> bool {
        self.lx.peek_next() == T::Op(op)
    }

    pub(in crate::router) fn is_insert(&self) -> bool {
        matches!(
            self.kind,
            Some(StatementKind::Insert | StatementKind::Replace)
        )
    }

    pub(in crate::router) fn set_kind(&mut self, kind: StatementKind) {
        self.kind = Some(kind);
        if self.first_statement {
            self.out.kind = kind;
        }
    }

    // --- leading hint comments -----------------------------------------------------------

    /// Reads the leading comments (hints among them). A line comment that holds a NUL
    /// byte is left to the lexer, which refuses it.
    pub(in crate::router) fn leading_hints(&mut self) {
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

    pub(in crate::router) fn hint(&mut self, c: &'a [u8]) {
        match parse_hint(c, self.cols) {
            Hint::Key(v) => self.add_key(KeyRef::Literal(v)),
            Hint::Malformed => self.hint_bad = true,
            Hint::Comment => {}
        }
    }

    // --- main loop -----------------------------------------------------------------------

    pub(in crate::router) fn run(&mut self) {
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

    pub(in crate::router) fn finish(mut self) {
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
    pub(in crate::router) fn statement_begins(&mut self, t: T) {
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
}
