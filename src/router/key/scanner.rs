//! The scanner: one pass over the lexer's tokens that finds the statement's kind, tables
//! and shard-key values, with a frame per parenthesis level (see [`super::scan`]).

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

    pub(in crate::router) fn op(&mut self, op: Op, ti: u32) {
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

    pub(in crate::router) fn semicolon(&mut self) {
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

    pub(in crate::router) fn and(&mut self, ti: u32) {
        let f = self.top_mut();
        if f.between > 0 {
            f.between -= 1;
        } else if f.in_cond_now() {
            f.conj_at = ti.wrapping_add(1);
        }
    }

    pub(in crate::router) fn or(&mut self) {
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

    pub(in crate::router) fn push(&mut self, f: Frame) -> bool {
        if self.overflow > 0 || self.depth + 1 >= MAX_DEPTH {
            self.problem(KeyProblem::TooComplex);
            return false;
        }
        self.depth += 1;
        self.frames[self.depth] = f;
        true
    }

    pub(in crate::router) fn open(&mut self, ti: u32) {
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

    pub(in crate::router) fn close(&mut self) {
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

    pub(in crate::router) fn comma(&mut self, ti: u32) {
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

    pub(in crate::router) fn table(&mut self, name: &'a [u8]) {
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

    pub(in crate::router) fn start_cond(&mut self, ti: u32, from_on: bool) {
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

    pub(in crate::router) fn start_assign(&mut self, kind: AssignKind, ti: u32) {
        let f = self.top_mut();
        f.clause = match kind {
            AssignKind::Update => Clause::AssignUpdate,
            AssignKind::InsertSet => Clause::AssignInsertSet,
            AssignKind::OnDuplicate => Clause::AssignOnDuplicate,
        };
        f.conj_at = ti.wrapping_add(1);
    }

    /// An INSERT source other than VALUES/SET (SELECT, TABLE, WITH) is being read.
    pub(in crate::router) fn check_insert_select(&mut self) {
        if self.is_insert()
            && matches!(
                self.frames[0].clause,
                Clause::InsertTarget | Clause::InsertColumnsDone | Clause::InsertPartition
            )
        {
            self.problem(KeyProblem::InsertSelect);
        }
    }

    pub(in crate::router) fn keyword(&mut self, k: Kw, w: &'a [u8], ti: u32) {
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
    pub(in crate::router) fn statement_keyword(&mut self, k: Kw) {
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
    pub(in crate::router) fn name(&mut self, n: &'a [u8], ti: u32) -> bool {
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

    pub(in crate::router) fn key_ref(&mut self, f: Frame, ti: u32) {
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

    pub(in crate::router) fn assignment(&mut self, kind: AssignKind) {
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
    pub(in crate::router) fn context_problem(&mut self) {
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
    pub(in crate::router) fn cond_key(&mut self, f: Frame, ti: u32) {
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
    pub(in crate::router) fn row_value(&mut self, col: u16) {
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
