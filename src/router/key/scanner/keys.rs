//! Identifiers and key-column mentions: whether a mention proves the key's value (a
//! condition's conjunct, `key IN (…)`, an INSERT row or SET list) or is a problem.

use super::*;

impl<'a, 'c, 'o> Scanner<'a, 'c, 'o> {
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
