//! The frame stack: `(` opens a frame (a subquery, an expression, an INSERT column list
//! or row), `)` and `;` close frames, `,` moves on; AND/OR decide what is a conjunct.

use super::*;

impl<'a, 'c, 'o> Scanner<'a, 'c, 'o> {
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
}
