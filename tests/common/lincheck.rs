//! A linearizability checker for key-value histories recorded by concurrent
//! clients, in the style of Jepsen's Knossos and porcupine.
//!
//! # Model
//!
//! Every key is an independent register that starts out absent. The
//! operations are [`Op::Put`] (set), [`Op::Get`] (read; `None` = absent),
//! [`Op::Cas`] (compare-and-set: if the register equals `expected`, with
//! `None` meaning absent, it becomes `new` and the op returns `true`;
//! otherwise nothing changes and it returns `false`) and [`Op::Delete`]
//! (the register becomes absent).
//!
//! Each [`Event`] records who ran the op, when it was called and when it
//! returned (nanoseconds since some common start), and its [`Outcome`]:
//! either the result, or [`Outcome::Unknown`] when the client got an error or
//! a timeout and cannot tell whether the op took effect (Jepsen's `:info`).
//! An unknown op may take effect at any instant after its call (its return
//! time is treated as +infinity) or never. An unknown `Get` has no effect and
//! is dropped; an unknown `Cas`, if it took effect, behaves per the model (it
//! may have swapped or not).
//!
//! A history is linearizable if there is a total order of its operations
//! (all completed ones, plus any subset of the unknown ones) that respects
//! real time (if `a` returned before `b` was called, `a` comes first) and in
//! which every operation's recorded result is what the register model would
//! produce. Two operations whose return and call times are equal count as
//! concurrent.
//!
//! # Algorithm
//!
//! Single-key register histories are *P-compositional*: a history is
//! linearizable iff each key's sub-history is, so every key is checked on its
//! own, in key order, and the first failing key is reported.
//!
//! For one key this is the Wing–Gong search with Lowe's memoisation (WGL):
//! the completed ops' call and return entries are kept, ordered by time, in
//! a doubly linked list. Any op whose call entry comes before the first
//! remaining return entry may be linearized next; linearizing it applies it
//! to the model and lifts its entries out of the list. Reaching a return
//! entry means that op cannot be postponed any further, so the search
//! backtracks (depth first, explicit stack). Every configuration (set of
//! linearized ops, model state) reached is remembered in a hash set, so none
//! is explored twice. The search succeeds once every completed op is
//! linearized. Unknown ops have no return entry: they stay candidates from
//! their call on, and need not be linearized at all.
//!
//! On top of that, reductions that each only discard orders for which an
//! equivalent one is still explored:
//!
//! * a candidate *read-only* op (a read, a failed cas) that applies in the
//!   current state is linearized next, without trying alternatives: it can
//!   be moved to the front of any valid continuation, so concurrent reads
//!   are never permuted;
//! * unknown ops are what makes this search blow up (each may be pending or
//!   done in any configuration), so a linearization with as few of them as
//!   possible is sought: an unknown op is only placed where it changes the
//!   register and some remaining op could observe that, the search tracks
//!   what the register would hold without it and prunes as soon as the two
//!   merge unobserved, identical unknown ops are used in call order, a
//!   configuration is skipped if one with the same completed ops and state
//!   but a *subset* of its unknown ops was already visited, and completed
//!   ops are tried before unknown ones;
//! * a completed read (or successful cas) of a value that no op ever wrote
//!   is reported before any search.
//!
//! On failure the explanation shows the longest linearizable prefix found
//! (by completed ops), the register state after it, and the ops that real
//! time allowed next, each with the reason it could not be placed.
//!
//! [`check`] takes a wall-clock budget and returns [`Verdict::Timeout`] once
//! it is exhausted, so it never hangs a test.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// A single-key operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
    Delete {
        key: String,
    },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn get(key: impl Into<String>) -> Op {
        Op::Get { key: key.into() }
    }

    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: impl Into<String>) -> Op {
        Op::Cas {
            key: key.into(),
            expected: expected.map(str::to_string),
            new: new.into(),
        }
    }

    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Cas { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// The result of an operation that completed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `Put` / `Delete` succeeded.
    Done,
    /// What a `Get` read (`None` = absent).
    Value(Option<String>),
    /// Whether a `Cas` swapped.
    Swapped(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok(Ret),
    /// Error or timeout: the op may or may not have taken effect.
    Unknown,
}

/// One recorded operation. Times are nanoseconds since a common start;
/// `ret` is ignored when the outcome is [`Outcome::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub client: usize,
    pub op: Op,
    pub call: u64,
    pub ret: u64,
    pub outcome: Outcome,
}

impl Event {
    /// A completed operation.
    pub fn ok(client: usize, op: Op, call: u64, ret: u64, result: Ret) -> Event {
        Event {
            client,
            op,
            call,
            ret,
            outcome: Outcome::Ok(result),
        }
    }

    /// An operation whose outcome is unknown.
    pub fn unknown(client: usize, op: Op, call: u64) -> Event {
        Event {
            client,
            op,
            call,
            ret: u64::MAX,
            outcome: Outcome::Unknown,
        }
    }
}

/// A recorded history (a thin wrapper around `Vec<Event>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn check(&self, budget: Duration) -> Verdict {
        check(&self.events, budget)
    }
}

impl From<Vec<Event>> for History {
    fn from(events: Vec<Event>) -> Self {
        History { events }
    }
}

/// Thread-safe recorder for concurrent clients: take [`Recorder::invoke`]
/// right before sending a request and [`Recorder::complete`] right after its
/// response (or error) arrived. Clones share the same history and clock.
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

/// An invoked operation that has not completed yet.
#[must_use = "complete the operation with Recorder::complete"]
#[derive(Debug)]
pub struct Pending {
    client: usize,
    op: Op,
    call: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Nanoseconds since this recorder was created.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn invoke(&self, client: usize, op: Op) -> Pending {
        Pending {
            client,
            op,
            call: self.now(),
        }
    }

    pub fn complete(&self, pending: Pending, outcome: Outcome) {
        let ret = self.now();
        let event = Event {
            client: pending.client,
            op: pending.op,
            call: pending.call,
            ret,
            outcome,
        };
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }

    /// A snapshot of everything completed so far.
    pub fn history(&self) -> History {
        History::from(
            self.events
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable {
        key: String,
        explanation: String,
    },
    /// The budget ran out while checking `key`.
    Timeout {
        key: String,
    },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable { key, explanation } => {
                write!(f, "NOT linearizable (key {key:?}):\n{explanation}")
            }
            Verdict::Timeout { key } => {
                write!(
                    f,
                    "linearizability check timed out (while checking key {key:?})"
                )
            }
        }
    }
}

struct Time(u64);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}µs", self.0 / 1000, self.0 % 1000)
    }
}

struct Val<'a>(Option<&'a str>);

impl fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "absent"),
            Some(v) => write!(f, "{v:?}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put({key:?}, {value:?})"),
            Op::Get { key } => write!(f, "get({key:?})"),
            Op::Cas { key, expected, new } => write!(
                f,
                "cas({key:?}, expected {}, new {new:?})",
                Val(expected.as_deref())
            ),
            Op::Delete { key } => write!(f, "delete({key:?})"),
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Done => write!(f, "ok"),
            Ret::Value(v) => write!(f, "{}", Val(v.as_deref())),
            Ret::Swapped(true) => write!(f, "swapped"),
            Ret::Swapped(false) => write!(f, "not swapped"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(r) => write!(
                f,
                "client {} {} [{} .. {}] -> {r}",
                self.client,
                self.op,
                Time(self.call),
                Time(self.ret)
            ),
            Outcome::Unknown => write!(
                f,
                "client {} {} [{} .. ?] -> unknown outcome",
                self.client,
                self.op,
                Time(self.call)
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

/// Checks `history` for linearizability against the register-per-key model,
/// giving up with [`Verdict::Timeout`] after `budget` of wall-clock time.
pub fn check(history: &[Event], budget: Duration) -> Verdict {
    let deadline = Instant::now().checked_add(budget);
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        by_key.entry(e.op.key()).or_default().push(i);
    }
    for (key, indices) in by_key {
        match check_key(history, &indices, deadline) {
            KeyResult::Linearizable => {}
            KeyResult::NotLinearizable(explanation) => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    explanation,
                }
            }
            KeyResult::Timeout => {
                return Verdict::Timeout {
                    key: key.to_string(),
                }
            }
        }
    }
    Verdict::Linearizable
}

// ---------------------------------------------------------------------------
// Per-key search
// ---------------------------------------------------------------------------

enum KeyResult {
    Linearizable,
    NotLinearizable(String),
    Timeout,
}

/// Interned register value; `ABSENT` is the absent register.
type StateId = u32;
const ABSENT: StateId = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Put (or Delete, with `ABSENT`): always applies.
    Write(StateId),
    /// A Get that returned this.
    Read(StateId),
    /// `swapped` is `None` when the outcome is unknown.
    Cas {
        expected: StateId,
        new: StateId,
        swapped: Option<bool>,
    },
}

impl Step {
    /// Whether the step never changes the register when it applies: a read,
    /// a failed cas, or a successful cas that swaps a value for itself.
    fn is_read_only(self) -> bool {
        match self {
            Step::Read(_) => true,
            Step::Cas {
                expected,
                new,
                swapped,
            } => swapped == Some(false) || (swapped == Some(true) && expected == new),
            Step::Write(_) => false,
        }
    }

    /// The register after applying this step to `state`, or `None` if the
    /// step's recorded result is impossible in `state`.
    fn apply(self, state: StateId) -> Option<StateId> {
        match self {
            Step::Write(v) => Some(v),
            Step::Read(v) => (state == v).then_some(state),
            Step::Cas {
                expected,
                new,
                swapped,
            } => match swapped {
                Some(true) => (state == expected).then_some(new),
                Some(false) => (state != expected).then_some(state),
                None => Some(if state == expected { new } else { state }),
            },
        }
    }
}

struct KeyOp {
    /// Index into the full history (for explanations).
    event: usize,
    step: Step,
    unknown: bool,
    call: u64,
    ret: u64,
}

/// Register values seen in one key's history; id 0 is "absent".
struct Interner<'a> {
    values: Vec<Option<&'a str>>,
    ids: HashMap<&'a str, StateId>,
}

impl Default for Interner<'_> {
    fn default() -> Self {
        Interner {
            values: vec![None],
            ids: HashMap::new(),
        }
    }
}

impl<'a> Interner<'a> {
    fn intern(&mut self, v: Option<&'a str>) -> StateId {
        let Some(s) = v else {
            return ABSENT;
        };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // More distinct values than u32 ids cannot fit in memory anyway.
        let id = StateId::try_from(self.values.len()).unwrap_or(StateId::MAX);
        self.values.push(Some(s));
        self.ids.insert(s, id);
        id
    }
}

fn malformed(index: usize, e: &Event, why: &str) -> KeyResult {
    KeyResult::NotLinearizable(format!("malformed history: event #{index} ({e}): {why}"))
}

fn check_key(history: &[Event], indices: &[usize], deadline: Option<Instant>) -> KeyResult {
    let mut interner = Interner::default();
    let mut ok_ops = Vec::new();
    let mut unknown_ops = Vec::new();
    for &i in indices {
        let e = &history[i];
        let unknown = matches!(e.outcome, Outcome::Unknown);
        let step = match (&e.op, &e.outcome) {
            (Op::Get { .. }, Outcome::Unknown) => continue,
            (Op::Get { .. }, Outcome::Ok(Ret::Value(v))) => {
                Step::Read(interner.intern(v.as_deref()))
            }
            (Op::Put { value, .. }, Outcome::Unknown | Outcome::Ok(Ret::Done)) => {
                Step::Write(interner.intern(Some(value)))
            }
            (Op::Delete { .. }, Outcome::Unknown | Outcome::Ok(Ret::Done)) => Step::Write(ABSENT),
            (Op::Cas { expected, new, .. }, Outcome::Unknown) => Step::Cas {
                expected: interner.intern(expected.as_deref()),
                new: interner.intern(Some(new)),
                swapped: None,
            },
            (Op::Cas { expected, new, .. }, Outcome::Ok(Ret::Swapped(b))) => Step::Cas {
                expected: interner.intern(expected.as_deref()),
                new: interner.intern(Some(new)),
                swapped: Some(*b),
            },
            _ => return malformed(i, e, "result kind does not match the operation"),
        };
        if !unknown && e.ret < e.call {
            return malformed(i, e, "returned before it was called");
        }
        let op = KeyOp {
            event: i,
            step,
            unknown,
            call: e.call,
            ret: if unknown { u64::MAX } else { e.ret },
        };
        if unknown {
            unknown_ops.push(op);
        } else {
            ok_ops.push(op);
        }
    }
    if ok_ops.is_empty() {
        return KeyResult::Linearizable;
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return KeyResult::Timeout;
    }
    if let Some(explanation) = impossible_values(history, &ok_ops, &unknown_ops, &interner) {
        return KeyResult::NotLinearizable(explanation);
    }
    ok_ops.sort_by_key(|o| (o.call, o.ret, o.event));
    unknown_ops.sort_by_key(|o| (o.call, o.event));
    let n_values = interner.values.len();
    let mut search = Search::new(ok_ops, unknown_ops, n_values);
    let r = search.run(deadline);
    match r {
        Some(true) => KeyResult::Linearizable,
        Some(false) => KeyResult::NotLinearizable(explain(
            history,
            &search.ops,
            &interner.values,
            &search.best_prefix,
            search.best_state,
        )),
        None => KeyResult::Timeout,
    }
}

/// Completed ops that observed a value no op ever wrote to the key can never
/// be linearized; reports them without searching.
fn impossible_values(
    history: &[Event],
    ok_ops: &[KeyOp],
    unknown_ops: &[KeyOp],
    interner: &Interner<'_>,
) -> Option<String> {
    use std::fmt::Write as _;
    let mut written = vec![false; interner.values.len()];
    written[ABSENT as usize] = true;
    for op in ok_ops.iter().chain(unknown_ops) {
        match op.step {
            Step::Write(v) | Step::Cas { new: v, .. } => written[v as usize] = true,
            Step::Read(_) => {}
        }
    }
    let mut bad: Vec<&KeyOp> = ok_ops
        .iter()
        .filter(|op| match op.step {
            Step::Read(v) => !written[v as usize],
            Step::Cas {
                expected,
                swapped: Some(true),
                ..
            } => !written[expected as usize],
            _ => false,
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    bad.sort_by_key(|op| (op.call, op.event));
    let mut out = format!(
        "{} completed operation(s) observed a value that no operation ever wrote to this key:\n",
        bad.len()
    );
    for op in bad.iter().take(SHOW_CANDIDATES) {
        let _ = writeln!(out, "  #{} {}", op.event, history[op.event]);
    }
    if bad.len() > SHOW_CANDIDATES {
        let _ = writeln!(out, "  ... and {} more", bad.len() - SHOW_CANDIDATES);
    }
    Some(out)
}

/// What the search does next in the current configuration.
enum Phase {
    /// A configuration was just reached: look for a forced op.
    Fresh,
    /// Scanning completed ops from this entry.
    Completed(usize),
    /// Scanning unknown ops.
    Unknown(UnknownScan),
}

/// A scan over the pending unknown ops of a configuration.
#[derive(Clone, Copy)]
struct UnknownScan {
    /// Position in the unknown-op list.
    pos: usize,
    /// Unknown ops called by this time (the first remaining return) are
    /// candidates.
    until: u64,
    /// Whether a failed cas that expects the current value could be
    /// linearized right after an unknown op (see [`Search::try_push`]).
    failed_cas_expects_state: bool,
}

/// Where to resume scanning a configuration when the search backtracks to it.
#[derive(Clone, Copy)]
enum Resume {
    /// The op was forced (see [`Search::run`]): no alternatives to try.
    Forced,
    /// After this entry of the completed-op list.
    Completed(usize),
    /// After this position of a scan of the unknown-op list.
    Unknown(UnknownScan),
}

struct Frame {
    op: usize,
    resume: Resume,
    prev_state: StateId,
    prev_constraint: Option<StateId>,
    prev_hi: usize,
}

/// Head (and end) sentinel of the circular lists.
const HEAD: usize = 0;

/// Depth-first WGL search over one key's operations.
///
/// Op ids: `0..n_ok` are the completed ops in call order, `n_ok..` the
/// unknown ones in call order.
struct Search {
    ops: Vec<KeyOp>,
    n_ok: usize,
    // Completed ops' call and return entries, sorted by time (calls first at
    // equal times), as a circular doubly linked list; entry 0 is the head.
    next: Vec<usize>,
    prev: Vec<usize>,
    entry_op: Vec<usize>,
    entry_is_call: Vec<bool>,
    entry_time: Vec<u64>,
    call_entry: Vec<usize>,
    ret_entry: Vec<usize>,
    // Pending unknown ops in call order; position p + 1 holds op n_ok + p.
    unext: Vec<usize>,
    uprev: Vec<usize>,
    /// Per unknown op: the previous unknown op (in call order) with the same
    /// step, if any. Such copies are interchangeable, so they are used in
    /// call order (an earlier call can stand in for a later one).
    same_before: Vec<Option<usize>>,
    /// Linearized completed ops, and how many ops at the start of the call
    /// order are all linearized (`k`) and one past the last linearized (`hi`).
    ok_bits: Vec<u64>,
    k: usize,
    hi: usize,
    unk_bits: Vec<u64>,
    /// Per value: not yet linearized ops that could tell the register holding
    /// it apart from holding something else (reads of it, cas ops other than
    /// failed ones expecting it).
    observers: Vec<u32>,
    memo: Memo,
    key_buf: Vec<u64>,
    stack: Vec<Frame>,
    state: StateId,
    constraint: Option<StateId>,
    remaining_ok: usize,
    // Longest prefix (by completed ops) found, for the explanation; `agree`
    // is how many frames of the current stack it shares.
    best_ok: usize,
    best_prefix: Vec<usize>,
    best_state: StateId,
    agree: usize,
}

impl Search {
    fn new(ok_ops: Vec<KeyOp>, unknown_ops: Vec<KeyOp>, n_values: usize) -> Search {
        let n_ok = ok_ops.len();
        let n_unknown = unknown_ops.len();
        let mut ops = ok_ops;
        ops.extend(unknown_ops);

        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n_ok);
        for (o, op) in ops.iter().enumerate().take(n_ok) {
            order.push((op.call, false, o));
            order.push((op.ret, true, o));
        }
        order.sort_unstable();
        let n_entries = order.len();
        let mut entry_op = vec![usize::MAX; n_entries + 1];
        let mut entry_is_call = vec![false; n_entries + 1];
        let mut entry_time = vec![0u64; n_entries + 1];
        let mut call_entry = vec![0usize; n_ok];
        let mut ret_entry = vec![0usize; n_ok];
        for (pos, &(time, is_ret, o)) in order.iter().enumerate() {
            let entry = pos + 1;
            entry_op[entry] = o;
            entry_is_call[entry] = !is_ret;
            entry_time[entry] = time;
            if is_ret {
                ret_entry[o] = entry;
            } else {
                call_entry[o] = entry;
            }
        }
        let ring_next = |len: usize| -> Vec<usize> { (0..len).map(|i| (i + 1) % len).collect() };
        let ring_prev =
            |len: usize| -> Vec<usize> { (0..len).map(|i| (i + len - 1) % len).collect() };

        let mut last_with_step: HashMap<Step, usize> = HashMap::new();
        let same_before = (0..n_unknown)
            .map(|u| last_with_step.insert(ops[n_ok + u].step, u))
            .collect();

        let mut observers = vec![0u32; n_values];
        for op in &ops {
            match op.step {
                Step::Read(v) => observers[v as usize] += 1,
                Step::Cas {
                    swapped: Some(false),
                    ..
                }
                | Step::Write(_) => {}
                Step::Cas { expected, .. } => observers[expected as usize] += 1,
            }
        }

        Search {
            n_ok,
            next: ring_next(n_entries + 1),
            prev: ring_prev(n_entries + 1),
            entry_op,
            entry_is_call,
            entry_time,
            call_entry,
            ret_entry,
            unext: ring_next(n_unknown + 1),
            uprev: ring_prev(n_unknown + 1),
            same_before,
            ok_bits: vec![0; n_ok.div_ceil(64)],
            k: 0,
            hi: 0,
            unk_bits: vec![0; n_unknown.div_ceil(64)],
            observers,
            memo: Memo::new(n_unknown.div_ceil(64)),
            key_buf: Vec::new(),
            stack: Vec::new(),
            state: ABSENT,
            constraint: None,
            remaining_ok: n_ok,
            best_ok: 0,
            best_prefix: Vec::new(),
            best_state: ABSENT,
            agree: 0,
            ops,
        }
    }

    /// `Some(true)`: linearizable; `Some(false)`: not; `None`: out of time.
    ///
    /// In each configuration: if a candidate completed op is read-only (see
    /// [`Step::is_read_only`]) and applies in the current state, it is
    /// linearized next and nothing else is tried, since moving it to the
    /// front of any valid continuation keeps that valid (real time allows it
    /// and it changes no state wherever it applies). Otherwise the candidate
    /// completed ops are tried in list order, then the pending unknown ops
    /// called by the first remaining return (see [`Search::try_push`]).
    fn run(&mut self, deadline: Option<Instant>) -> Option<bool> {
        let mut phase = Phase::Fresh;
        // Steps until the next look at the clock.
        let mut until_clock: u32 = 0;
        loop {
            if self.remaining_ok == 0 {
                return Some(true);
            }
            if until_clock == 0 {
                until_clock = 512;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
            }
            until_clock -= 1;
            let next_phase = match phase {
                Phase::Fresh => {
                    let mut e = self.next[HEAD];
                    let mut forced = None;
                    while e != HEAD && self.entry_is_call[e] {
                        let o = self.entry_op[e];
                        let step = self.ops[o].step;
                        if step.is_read_only() && step.apply(self.state) == Some(self.state) {
                            forced = Some(o);
                            break;
                        }
                        e = self.next[e];
                    }
                    match forced {
                        Some(o) if self.try_push(o, Resume::Forced) => Some(Phase::Fresh),
                        // Forced op already explored (or pruned): dead end.
                        Some(_) => None,
                        None => Some(Phase::Completed(self.next[HEAD])),
                    }
                }
                Phase::Completed(e) if self.entry_is_call[e] => {
                    if self.try_push(self.entry_op[e], Resume::Completed(e)) {
                        Some(Phase::Fresh)
                    } else {
                        Some(Phase::Completed(self.next[e]))
                    }
                }
                Phase::Completed(_) if self.unext[HEAD] == HEAD => None,
                // `e` is the first remaining return: the list cannot run out
                // of entries while completed ops remain.
                Phase::Completed(e) => Some(Phase::Unknown(UnknownScan {
                    pos: self.unext[HEAD],
                    until: self.entry_time[e],
                    failed_cas_expects_state: self.failed_cas_expects_state(),
                })),
                Phase::Unknown(scan)
                    if scan.pos != HEAD
                        && self.ops[self.n_ok + scan.pos - 1].call <= scan.until =>
                {
                    if self.try_push(self.n_ok + scan.pos - 1, Resume::Unknown(scan)) {
                        Some(Phase::Fresh)
                    } else {
                        Some(Phase::Unknown(UnknownScan {
                            pos: self.unext[scan.pos],
                            ..scan
                        }))
                    }
                }
                Phase::Unknown(_) => None,
            };
            phase = match next_phase.or_else(|| self.backtrack()) {
                Some(p) => p,
                None => return Some(false),
            };
        }
    }

    /// Tries to linearize op `o` next; returns whether it was pushed.
    ///
    /// `constraint` is `Some(alt)` after an unknown op `U` changed the
    /// register and nothing has observed the change yet: `alt` is what the
    /// register would hold had `U` been omitted. If the alternative merges
    /// with the real state before any op noticed the difference, omitting
    /// `U` gives a valid linearization with fewer unknown ops, so this one is
    /// pruned; for the same reason an unknown op is not tried at all when no
    /// remaining op could notice it, and no-op unknown ops are never tried.
    /// A linearizable history has a linearization with the fewest unknown
    /// ops, and none of these rules prunes that one.
    fn try_push(&mut self, o: usize, resume: Resume) -> bool {
        let op = &self.ops[o];
        let state = self.state;
        let Some(new_state) = op.step.apply(state) else {
            return false;
        };
        let new_constraint = if op.unknown {
            let same_pending = self.same_before[o - self.n_ok]
                .is_some_and(|u| self.unk_bits[u / 64] & (1u64 << (u % 64)) == 0);
            if same_pending
                || new_state == state
                || (self.observers[new_state as usize] == 0
                    && !matches!(resume, Resume::Unknown(scan) if scan.failed_cas_expects_state))
                || self
                    .constraint
                    .is_some_and(|alt| op.step.apply(alt) == Some(new_state))
            {
                return false;
            }
            Some(state)
        } else {
            match self.constraint.map(|alt| op.step.apply(alt)) {
                None | Some(None) => None,
                Some(Some(alt)) if alt == new_state => return false,
                Some(Some(alt)) => Some(alt),
            }
        };
        let unknown = op.unknown;

        let prev_hi = self.hi;
        self.mark(o, true);
        self.key_buf.clear();
        self.key_buf.push(self.k as u64);
        self.key_buf.push(u64::from(new_state));
        if self.hi > self.k {
            self.key_buf
                .extend_from_slice(&self.ok_bits[self.k / 64..=(self.hi - 1) / 64]);
        }
        if !self
            .memo
            .visit(&self.key_buf, &self.unk_bits, new_constraint)
        {
            self.mark(o, false);
            self.hi = prev_hi;
            return false;
        }

        self.stack.push(Frame {
            op: o,
            resume,
            prev_state: state,
            prev_constraint: self.constraint,
            prev_hi,
        });
        self.count_observers(o, false);
        if unknown {
            let pos = o - self.n_ok + 1;
            lift(&mut self.unext, &mut self.uprev, pos);
        } else {
            lift(&mut self.next, &mut self.prev, self.call_entry[o]);
            lift(&mut self.next, &mut self.prev, self.ret_entry[o]);
            self.remaining_ok -= 1;
        }
        self.state = new_state;
        self.constraint = new_constraint;

        let depth = self.stack.len();
        if self.agree == depth - 1 && self.best_prefix.get(depth - 1) == Some(&o) {
            self.agree = depth;
        }
        if !unknown && self.n_ok - self.remaining_ok > self.best_ok {
            self.best_ok = self.n_ok - self.remaining_ok;
            self.best_prefix.truncate(self.agree);
            self.best_prefix
                .extend(self.stack[self.agree..].iter().map(|f| f.op));
            self.agree = depth;
            self.best_state = new_state;
        }
        true
    }

    /// Undoes frames until one with alternatives left; `None` if the stack
    /// runs out (not linearizable).
    fn backtrack(&mut self) -> Option<Phase> {
        loop {
            let f = self.stack.pop()?;
            let o = f.op;
            self.mark(o, false);
            self.hi = f.prev_hi;
            self.count_observers(o, true);
            if self.ops[o].unknown {
                let pos = o - self.n_ok + 1;
                unlift(&mut self.unext, &mut self.uprev, pos);
            } else {
                unlift(&mut self.next, &mut self.prev, self.ret_entry[o]);
                unlift(&mut self.next, &mut self.prev, self.call_entry[o]);
                self.remaining_ok += 1;
            }
            self.state = f.prev_state;
            self.constraint = f.prev_constraint;
            self.agree = self.agree.min(self.stack.len());
            match f.resume {
                Resume::Forced => continue,
                Resume::Completed(e) => return Some(Phase::Completed(self.next[e])),
                Resume::Unknown(scan) => {
                    return Some(Phase::Unknown(UnknownScan {
                        pos: self.unext[scan.pos],
                        ..scan
                    }))
                }
            }
        }
    }

    /// Whether some pending failed cas expects the current value and could
    /// follow immediately, i.e. was called no later than the first return of
    /// a pending completed op other than a failed cas.
    fn failed_cas_expects_state(&self) -> bool {
        let mut e = self.next[HEAD];
        while e != HEAD {
            let failed_cas = match self.ops[self.entry_op[e]].step {
                Step::Cas {
                    expected,
                    swapped: Some(false),
                    ..
                } => Some(expected),
                _ => None,
            };
            match (self.entry_is_call[e], failed_cas) {
                (true, Some(expected)) if expected == self.state => return true,
                (false, None) => return false,
                _ => {}
            }
            e = self.next[e];
        }
        false
    }

    /// Sets or clears op `o` in the linearized sets, keeping `k` and `hi`
    /// up to date (`hi` is only raised here; callers restore it).
    fn mark(&mut self, o: usize, linearized: bool) {
        if self.ops[o].unknown {
            let u = o - self.n_ok;
            let bit = 1u64 << (u % 64);
            if linearized {
                self.unk_bits[u / 64] |= bit;
            } else {
                self.unk_bits[u / 64] &= !bit;
            }
            return;
        }
        let bit = 1u64 << (o % 64);
        if linearized {
            self.ok_bits[o / 64] |= bit;
            self.hi = self.hi.max(o + 1);
            while self.k < self.n_ok && self.ok_bits[self.k / 64] & (1u64 << (self.k % 64)) != 0 {
                self.k += 1;
            }
        } else {
            self.ok_bits[o / 64] &= !bit;
            self.k = self.k.min(o);
        }
    }

    fn count_observers(&mut self, o: usize, add: bool) {
        let counter = match self.ops[o].step {
            Step::Read(v) => &mut self.observers[v as usize],
            Step::Cas {
                swapped: Some(false),
                ..
            }
            | Step::Write(_) => return,
            Step::Cas { expected, .. } => &mut self.observers[expected as usize],
        };
        if add {
            *counter += 1;
        } else {
            *counter -= 1;
        }
    }
}

fn lift(next: &mut [usize], prev: &mut [usize], x: usize) {
    next[prev[x]] = next[x];
    prev[next[x]] = prev[x];
}

/// Re-inserts `x`; lifts must be undone in reverse order.
fn unlift(next: &mut [usize], prev: &mut [usize], x: usize) {
    next[prev[x]] = x;
    prev[next[x]] = x;
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

/// The configurations visited so far. Keyed by completed ops and state; per
/// key, a list of (linearized unknown ops, constraint) pairs, kept in arenas
/// so that a large memo is cheap to build and to free.
struct Memo {
    /// Key -> index of the first node of its list.
    map: HashMap<Box<[u64]>, u32>,
    nodes: Vec<MemoNode>,
    /// Node `i`'s unknown-op bitset is `bits[i * width..(i + 1) * width]`.
    bits: Vec<u64>,
    width: usize,
}

struct MemoNode {
    next: u32,
    constraint: Option<StateId>,
}

const NO_NODE: u32 = u32::MAX;

impl Memo {
    fn new(width: usize) -> Memo {
        Memo {
            map: HashMap::new(),
            nodes: Vec::new(),
            bits: Vec::new(),
            width,
        }
    }

    fn node_bits(&self, i: u32) -> &[u64] {
        let i = i as usize;
        &self.bits[i * self.width..(i + 1) * self.width]
    }

    /// Records a configuration; returns false if it, or one with the same
    /// completed ops and state, a subset of its unknown ops (so strictly more
    /// options left) and the same or no constraint, was already visited.
    fn visit(&mut self, key: &[u64], unknown: &[u64], constraint: Option<StateId>) -> bool {
        // One covers the other: fewer unknown ops and a weaker constraint.
        let covers = |by_u: &[u64], by_c: Option<StateId>, u: &[u64], c: Option<StateId>| {
            (by_c.is_none() || by_c == c) && is_subset(by_u, u)
        };
        let new = match u32::try_from(self.nodes.len()) {
            Ok(new) if new != NO_NODE => new,
            // Out of node ids (billions of configurations): stop memoising.
            _ => return true,
        };
        let head = match self.map.get(key) {
            Some(&head) => {
                let mut i = head;
                while i != NO_NODE {
                    let node = &self.nodes[i as usize];
                    if covers(self.node_bits(i), node.constraint, unknown, constraint) {
                        return false;
                    }
                    i = node.next;
                }
                // Unlink the entries the new one covers.
                let (mut head, mut last) = (head, NO_NODE);
                let mut i = head;
                while i != NO_NODE {
                    let next = self.nodes[i as usize].next;
                    if covers(
                        unknown,
                        constraint,
                        self.node_bits(i),
                        self.nodes[i as usize].constraint,
                    ) {
                        if last == NO_NODE {
                            head = next;
                        } else {
                            self.nodes[last as usize].next = next;
                        }
                    } else {
                        last = i;
                    }
                    i = next;
                }
                head
            }
            None => NO_NODE,
        };
        self.nodes.push(MemoNode {
            next: head,
            constraint,
        });
        self.bits.extend_from_slice(unknown);
        match self.map.get_mut(key) {
            Some(slot) => *slot = new,
            None => {
                self.map.insert(key.into(), new);
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------
// Explanation
// ---------------------------------------------------------------------------

const SHOW_PREFIX: usize = 12;
const SHOW_CANDIDATES: usize = 16;

fn explain(
    history: &[Event],
    ops: &[KeyOp],
    values: &[Option<&str>],
    prefix: &[usize],
    state: StateId,
) -> String {
    use std::fmt::Write as _;
    let val = |id: StateId| Val(values.get(id as usize).copied().flatten());
    let n_ok = ops.iter().filter(|o| !o.unknown).count();
    let n_unknown = ops.len() - n_ok;
    let prefix_ok = prefix.iter().filter(|&&o| !ops[o].unknown).count();
    let mut out = String::new();

    let _ = writeln!(
        out,
        "no valid linearization of this key's {} operations ({n_ok} completed, {n_unknown} with unknown outcome).",
        ops.len()
    );
    let _ = writeln!(
        out,
        "Longest linearizable prefix found: {} steps covering {prefix_ok} of the {n_ok} completed operations{}",
        prefix.len(),
        if prefix.len() > SHOW_PREFIX {
            format!("; its last {SHOW_PREFIX} steps:")
        } else {
            ":".to_string()
        }
    );
    // Replay the prefix to show the state after each step.
    let mut s = ABSENT;
    let mut after = Vec::with_capacity(prefix.len());
    for &o in prefix {
        s = ops[o].step.apply(s).unwrap_or(s);
        after.push(s);
    }
    let skip = prefix.len().saturating_sub(SHOW_PREFIX);
    if prefix.is_empty() {
        let _ = writeln!(out, "  (empty: not even the first operation can be placed)");
    }
    for (pos, (&o, &s)) in prefix.iter().zip(&after).enumerate().skip(skip) {
        let _ = writeln!(
            out,
            "  {:>5}. #{} {}   => register {}",
            pos + 1,
            ops[o].event,
            history[ops[o].event],
            val(s)
        );
    }
    let _ = writeln!(out, "Register after that prefix: {}", val(state));

    // Candidates: unlinearized ops called no later than the earliest return
    // among unlinearized completed ops.
    let mut done = vec![false; ops.len()];
    for &o in prefix {
        done[o] = true;
    }
    let earliest_ret = ops
        .iter()
        .enumerate()
        .filter(|(o, op)| !done[*o] && !op.unknown)
        .map(|(_, op)| history[op.event].ret)
        .min();
    let Some(earliest_ret) = earliest_ret else {
        return out;
    };
    let mut candidates: Vec<usize> = (0..ops.len())
        .filter(|&o| !done[o] && history[ops[o].event].call <= earliest_ret)
        .collect();
    candidates.sort_by_key(|&o| (ops[o].unknown, history[ops[o].event].call, o));
    let n_completed = candidates.iter().filter(|&&o| !ops[o].unknown).count();
    let _ = writeln!(
        out,
        "None of the completed operations that real time allows next (called by {}, the earliest return among the rest) can be placed:",
        Time(earliest_ret)
    );
    for &o in candidates.iter().take(n_completed.min(SHOW_CANDIDATES)) {
        let op = &ops[o];
        let why = match (op.step, op.step.apply(state)) {
            (_, Some(_)) => {
                "would apply here, but every continuation after it is a dead end".to_string()
            }
            (Step::Read(v), None) => {
                format!("read {} but the register holds {}", val(v), val(state))
            }
            (Step::Cas { expected, .. }, None) if state != expected => format!(
                "claims it swapped from {} but the register holds {}",
                val(expected),
                val(state)
            ),
            (Step::Cas { expected, .. }, None) => format!(
                "claims it did not swap, but the register holds the expected {}",
                val(expected)
            ),
            (Step::Write(_), None) => "cannot apply".to_string(),
        };
        let _ = writeln!(
            out,
            "  #{} {}\n        -> {why}",
            op.event, history[op.event]
        );
    }
    if n_completed > SHOW_CANDIDATES {
        let _ = writeln!(out, "  ... and {} more", n_completed - SHOW_CANDIDATES);
    }
    let unknown = &candidates[n_completed..];
    if !unknown.is_empty() {
        let _ = writeln!(
            out,
            "Operations with unknown outcome that could also take effect here (or never), to no avail:"
        );
        for &o in unknown.iter().take(SHOW_CANDIDATES) {
            let _ = writeln!(out, "  #{} {}", ops[o].event, history[ops[o].event]);
        }
        if unknown.len() > SHOW_CANDIDATES {
            let _ = writeln!(out, "  ... and {} more", unknown.len() - SHOW_CANDIDATES);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    fn done(client: usize, op: Op, call: u64, ret: u64) -> Event {
        Event::ok(client, op, call, ret, Ret::Done)
    }

    fn read(client: usize, key: &str, call: u64, ret: u64, v: Option<&str>) -> Event {
        Event::ok(
            client,
            Op::get(key),
            call,
            ret,
            Ret::Value(v.map(str::to_string)),
        )
    }

    fn cas(
        client: usize,
        key: &str,
        expected: Option<&str>,
        new: &str,
        call: u64,
        ret: u64,
        swapped: bool,
    ) -> Event {
        Event::ok(
            client,
            Op::cas(key, expected, new),
            call,
            ret,
            Ret::Swapped(swapped),
        )
    }

    fn assert_lin(h: &[Event]) {
        let v = check(h, BUDGET);
        assert_eq!(v, Verdict::Linearizable, "{v}");
    }

    fn assert_not_lin(h: &[Event]) -> String {
        match check(h, BUDGET) {
            Verdict::NotLinearizable { explanation, .. } => explanation,
            v => panic!("expected NotLinearizable, got {v}"),
        }
    }

    #[test]
    fn empty_and_trivial_histories() {
        assert_lin(&[]);
        assert_lin(&[read(0, "k", 0, 1, None)]);
        assert_lin(&[Event::unknown(0, Op::put("k", "a"), 0)]);
        assert_not_lin(&[read(0, "k", 0, 1, Some("a"))]);
    }

    #[test]
    fn sequential_valid() {
        assert_lin(&[
            read(0, "k", 0, 1, None),
            done(0, Op::put("k", "a"), 2, 3),
            read(1, "k", 4, 5, Some("a")),
            cas(0, "k", Some("a"), "b", 6, 7, true),
            cas(1, "k", Some("a"), "c", 8, 9, false),
            read(0, "k", 10, 11, Some("b")),
            done(1, Op::delete("k"), 12, 13),
            read(0, "k", 14, 15, None),
        ]);
    }

    #[test]
    fn sequential_read_of_never_written_value() {
        let why = assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            read(1, "k", 2, 3, Some("zzz")),
        ]);
        assert!(why.contains("\"zzz\""), "{why}");
        assert!(why.contains("client 1"), "{why}");
    }

    #[test]
    fn sequential_stale_read() {
        let why = assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            done(0, Op::put("k", "b"), 2, 3),
            read(1, "k", 4, 5, Some("a")),
        ]);
        assert!(
            why.contains("read \"a\" but the register holds \"b\""),
            "{why}"
        );
    }

    #[test]
    fn concurrent_only_one_order_works() {
        // Two overlapping puts; later reads pin the order b, a.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 10),
            done(1, Op::put("k", "b"), 0, 10),
            read(2, "k", 5, 8, Some("b")),
            read(2, "k", 20, 30, Some("a")),
        ]);
        // Both completed, then reads see a and then b: impossible.
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 10),
            done(1, Op::put("k", "b"), 0, 10),
            read(2, "k", 20, 30, Some("a")),
            read(2, "k", 40, 50, Some("b")),
        ]);
        // Concurrent reads may disagree while the puts are in flight.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 100),
            done(1, Op::put("k", "b"), 0, 100),
            read(2, "k", 10, 20, Some("a")),
            read(3, "k", 30, 40, Some("b")),
            read(2, "k", 200, 210, Some("b")),
        ]);
    }

    #[test]
    fn read_sees_put_in_flight() {
        assert_lin(&[
            done(0, Op::put("k", "v"), 0, 100),
            read(1, "k", 10, 20, Some("v")),
        ]);
        assert_lin(&[
            done(0, Op::put("k", "v"), 0, 100),
            read(1, "k", 10, 20, None),
            read(1, "k", 30, 40, Some("v")),
        ]);
        // Once a read saw it, a later read cannot miss it.
        assert_not_lin(&[
            done(0, Op::put("k", "v"), 0, 100),
            read(1, "k", 10, 20, Some("v")),
            read(2, "k", 30, 40, None),
        ]);
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        // The read returns exactly when the put is called.
        assert_lin(&[
            read(0, "k", 0, 10, Some("a")),
            done(1, Op::put("k", "a"), 10, 20),
        ]);
        assert_not_lin(&[
            read(0, "k", 0, 10, Some("a")),
            done(1, Op::put("k", "a"), 11, 20),
        ]);
    }

    #[test]
    fn cas_semantics() {
        // Cas on an absent register with expected None.
        assert_lin(&[
            cas(0, "k", None, "a", 0, 1, true),
            read(0, "k", 2, 3, Some("a")),
            cas(0, "k", None, "b", 4, 5, false),
            read(0, "k", 6, 7, Some("a")),
        ]);
        // Claims a swap from a value the register did not hold.
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            cas(0, "k", Some("x"), "b", 2, 3, true),
        ]);
        // Claims failure although the register held the expected value.
        let why = assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            cas(0, "k", Some("a"), "b", 2, 3, false),
        ]);
        assert!(why.contains("did not swap"), "{why}");
        // A failed cas changes nothing.
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            cas(0, "k", Some("x"), "b", 2, 3, false),
            read(0, "k", 4, 5, Some("b")),
        ]);
    }

    #[test]
    fn concurrent_cas_from_same_expected_value() {
        let base = done(0, Op::put("k", "a"), 0, 1);
        // One wins, one loses: fine.
        assert_lin(&[
            base.clone(),
            cas(1, "k", Some("a"), "b", 10, 20, true),
            cas(2, "k", Some("a"), "c", 10, 20, false),
            read(3, "k", 30, 40, Some("b")),
        ]);
        // Both claim success from "a": a lost update.
        let why = assert_not_lin(&[
            base.clone(),
            cas(1, "k", Some("a"), "b", 10, 20, true),
            cas(2, "k", Some("a"), "c", 10, 20, true),
        ]);
        assert!(why.contains("claims it swapped"), "{why}");
        // ... unless something restored "a" in between.
        assert_lin(&[
            base,
            cas(1, "k", Some("a"), "b", 10, 20, true),
            cas(2, "k", Some("a"), "c", 10, 20, true),
            cas(3, "k", Some("b"), "a", 10, 20, true),
        ]);
    }

    #[test]
    fn unknown_put_later_read() {
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            read(2, "k", 10, 11, Some("u")),
        ]);
        // It may take effect long after the client gave up, even after a
        // later completed put.
        assert_lin(&[
            Event::unknown(1, Op::put("k", "u"), 0),
            done(0, Op::put("k", "a"), 10, 11),
            read(2, "k", 20, 21, Some("a")),
            read(2, "k", 30, 31, Some("u")),
        ]);
    }

    #[test]
    fn unknown_put_never_read() {
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            read(2, "k", 10, 11, Some("a")),
            read(2, "k", 20, 21, Some("a")),
        ]);
    }

    #[test]
    fn read_of_value_written_only_after_the_read_returned() {
        let why = assert_not_lin(&[
            read(0, "k", 0, 10, Some("late")),
            done(1, Op::put("k", "late"), 20, 30),
        ]);
        assert!(why.contains("\"late\""), "{why}");
        assert_not_lin(&[
            read(0, "k", 0, 10, Some("late")),
            Event::unknown(1, Op::put("k", "late"), 20),
        ]);
    }

    #[test]
    fn unknown_op_takes_effect_at_most_once() {
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            read(0, "k", 10, 11, Some("u")),
            done(0, Op::put("k", "w"), 12, 13),
            read(0, "k", 14, 15, Some("u")),
        ]);
    }

    #[test]
    fn unknown_put_explains_failed_cas() {
        // Only the unknown put can explain why the cas failed; nothing ever
        // reads its value.
        assert_lin(&[
            done(0, Op::put("k", "x"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            cas(0, "k", Some("x"), "z", 3, 4, false),
            done(0, Op::put("k", "w"), 5, 6),
            read(0, "k", 7, 8, Some("w")),
        ]);
        // Same, with an intervening failed cas that does not care.
        assert_lin(&[
            done(0, Op::put("k", "x"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            cas(0, "k", Some("q"), "r", 3, 4, false),
            cas(0, "k", Some("x"), "z", 5, 6, false),
            done(0, Op::put("k", "w"), 7, 8),
        ]);
    }

    #[test]
    fn unknown_cas_and_delete() {
        // An unknown cas may have succeeded...
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::cas("k", Some("a"), "b"), 2),
            read(0, "k", 10, 11, Some("b")),
        ]);
        // ...or not.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::cas("k", Some("a"), "b"), 2),
            read(0, "k", 10, 11, Some("a")),
        ]);
        // But it can only swap from its expected value.
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::cas("k", Some("x"), "b"), 2),
            read(0, "k", 10, 11, Some("b")),
        ]);
        // A chain of unknown ops: put then cas.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::put("k", "u"), 2),
            Event::unknown(2, Op::cas("k", Some("u"), "v"), 3),
            read(0, "k", 10, 11, Some("v")),
        ]);
        // Unknown delete.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::delete("k"), 2),
            read(0, "k", 10, 11, None),
        ]);
        // Unknown gets are ignored, whatever else happened.
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            Event::unknown(1, Op::get("k"), 2),
            read(0, "k", 10, 11, Some("a")),
        ]);
    }

    #[test]
    fn delete_then_get_none() {
        assert_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            done(0, Op::delete("k"), 2, 3),
            read(1, "k", 4, 5, None),
            cas(1, "k", None, "b", 6, 7, true),
            read(1, "k", 8, 9, Some("b")),
        ]);
        assert_not_lin(&[
            done(0, Op::put("k", "a"), 0, 1),
            done(0, Op::delete("k"), 2, 3),
            read(1, "k", 4, 5, Some("a")),
        ]);
        // Deleting an absent key is fine.
        assert_lin(&[done(0, Op::delete("k"), 0, 1), read(1, "k", 2, 3, None)]);
    }

    #[test]
    fn keys_are_independent_and_failing_key_is_reported() {
        // Interleaved in time, but on different keys: no interference.
        assert_lin(&[
            done(0, Op::put("a", "1"), 0, 1),
            done(0, Op::put("b", "2"), 2, 3),
            read(1, "a", 4, 5, Some("1")),
            read(1, "b", 4, 5, Some("2")),
        ]);
        let v = check(
            &[
                done(0, Op::put("a", "1"), 0, 1),
                done(0, Op::put("b", "2"), 2, 3),
                read(1, "a", 4, 5, Some("1")),
                read(1, "b", 4, 5, Some("1")),
            ],
            BUDGET,
        );
        match v {
            Verdict::NotLinearizable { key, .. } => assert_eq!(key, "b"),
            v => panic!("expected NotLinearizable, got {v}"),
        }
    }

    #[test]
    fn malformed_events_are_rejected() {
        let why = assert_not_lin(&[Event::ok(0, Op::put("k", "a"), 0, 1, Ret::Swapped(true))]);
        assert!(why.contains("malformed"), "{why}");
        let why = assert_not_lin(&[done(0, Op::put("k", "a"), 5, 1)]);
        assert!(why.contains("malformed"), "{why}");
    }

    #[test]
    fn explanation_names_prefix_and_blocked_ops() {
        let why = assert_not_lin(&[
            done(3, Op::put("k", "a"), 1_000, 2_000),
            done(4, Op::put("k", "b"), 3_000, 4_000),
            read(5, "k", 5_000, 6_000, Some("a")),
        ]);
        assert!(
            why.contains("Longest linearizable prefix found: 2 steps"),
            "{why}"
        );
        assert!(
            why.contains("client 4 put(\"k\", \"b\") [3.000µs .. 4.000µs]"),
            "{why}"
        );
        assert!(why.contains("Register after that prefix: \"b\""), "{why}");
        assert!(why.contains("client 5 get(\"k\")"), "{why}");
    }

    #[test]
    fn history_and_recorder() {
        let rec = Recorder::new();
        let p = rec.invoke(0, Op::put("k", "a"));
        rec.complete(p, Outcome::Ok(Ret::Done));
        let p = rec.invoke(1, Op::get("k"));
        rec.complete(p, Outcome::Ok(Ret::Value(Some("a".into()))));
        let h = rec.history();
        assert_eq!(h.len(), 2);
        assert!(h.events()[0].call <= h.events()[0].ret);
        assert!(h.check(BUDGET).is_linearizable());

        let mut h = History::new();
        h.push(done(0, Op::put("k", "a"), 0, 1));
        h.push(read(0, "k", 2, 3, Some("b")));
        assert!(!h.check(BUDGET).is_linearizable());
    }

    /// Exhaustive reference: tries every real-time-respecting order of every
    /// subset of the unknown ops, with no pruning at all.
    fn brute_force(h: &[Event], done: &mut [bool], state: Option<String>) -> bool {
        let step = |e: &Event| -> Option<Option<String>> {
            match (&e.op, &e.outcome) {
                (Op::Put { value, .. }, _) => Some(Some(value.clone())),
                (Op::Delete { .. }, _) => Some(None),
                (Op::Get { .. }, Outcome::Ok(Ret::Value(v))) => (*v == state).then(|| v.clone()),
                (Op::Get { .. }, Outcome::Unknown) => Some(state.clone()),
                (Op::Cas { expected, new, .. }, outcome) => {
                    let swaps = *expected == state;
                    match outcome {
                        Outcome::Ok(Ret::Swapped(s)) if *s != swaps => None,
                        _ if swaps => Some(Some(new.clone())),
                        _ => Some(state.clone()),
                    }
                }
                _ => None,
            }
        };
        let pending_ok = (0..h.len()).filter(|&i| !done[i] && h[i].outcome != Outcome::Unknown);
        let Some(first_ret) = pending_ok.map(|i| h[i].ret).min() else {
            return true;
        };
        for i in 0..h.len() {
            if done[i] || h[i].call > first_ret {
                continue;
            }
            if let Some(next) = step(&h[i]) {
                done[i] = true;
                let found = brute_force(h, done, next);
                done[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = Rng(0x5eed);
        let values = ["a", "b", "c"];
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..3_000 {
            let n = 2 + rng.below(6) as usize;
            let n_values = 1 + rng.below(3);
            let mut h = Vec::new();
            for client in 0..n {
                let call = rng.below(12);
                let ret = call + rng.below(6);
                let value = values[rng.below(n_values) as usize];
                let other = (rng.below(4) != 0).then(|| values[rng.below(n_values) as usize]);
                let (op, result) = match rng.below(4) {
                    0 => (Op::get("k"), Ret::Value(other.map(str::to_string))),
                    1 => (Op::put("k", value), Ret::Done),
                    2 => (Op::cas("k", other, value), Ret::Swapped(rng.percent(50))),
                    _ => (Op::delete("k"), Ret::Done),
                };
                h.push(if rng.percent(25) {
                    Event::unknown(client, op, call)
                } else {
                    Event::ok(client, op, call, ret, result)
                });
            }
            let expected = brute_force(&h, &mut vec![false; h.len()], None);
            let got = check(&h, BUDGET);
            assert_eq!(got.is_linearizable(), expected, "{h:#?}\n{got}");
            assert!(!matches!(got, Verdict::Timeout { .. }));
            if expected {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        // Both verdicts are well represented.
        assert!(linearizable > 500 && not > 500, "{linearizable} / {not}");
    }

    // -- generated histories ------------------------------------------------

    /// xorshift64*: deterministic, std-only.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn percent(&mut self, p: u64) -> bool {
            self.below(100) < p
        }
    }

    /// Simulates `clients` clients, each running ops back to back against one
    /// atomic register per key; each op takes effect at a random instant
    /// within its interval. `unknown_pct`% of the ops are recorded as
    /// Unknown; half of those never take effect, the others take effect at a
    /// random instant up to well past the time the client gave up.
    fn generate(seed: u64, clients: usize, keys: usize, n: usize, unknown_pct: u64) -> Vec<Event> {
        enum Kind {
            Get,
            Put,
            Cas,
            Delete,
        }
        struct Planned {
            client: usize,
            key: usize,
            kind: Kind,
            call: u64,
            ret: u64,
            effect_at: Option<u64>,
            unknown: bool,
            value: String,
        }
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut clock = vec![0u64; clients];
        let mut planned = Vec::with_capacity(n);
        for i in 0..n {
            // The client that is idle first issues the next op.
            let client = (0..clients).min_by_key(|&c| clock[c]).unwrap_or(0);
            let call = clock[client] + rng.below(2_000);
            let duration = 100 + rng.below(5_000);
            let ret = call + duration;
            let kind = match rng.below(100) {
                0..=39 => Kind::Get,
                40..=64 => Kind::Put,
                65..=89 => Kind::Cas,
                _ => Kind::Delete,
            };
            let unknown = rng.percent(unknown_pct);
            let effect_at = if !unknown {
                Some(call + rng.below(duration + 1))
            } else if rng.percent(50) {
                Some(call + rng.below(3 * duration))
            } else {
                None
            };
            planned.push(Planned {
                client,
                key: rng.below(keys as u64) as usize,
                kind,
                call,
                ret,
                effect_at,
                unknown,
                value: format!("v{i}-c{client}"),
            });
            clock[client] = ret;
        }
        // Apply the effects in effect order to compute results.
        let mut by_effect: Vec<usize> =
            (0..n).filter(|&i| planned[i].effect_at.is_some()).collect();
        by_effect.sort_by_key(|&i| planned[i].effect_at);
        let mut registers: Vec<Option<String>> = vec![None; keys];
        let mut written: Vec<Vec<String>> = vec![Vec::new(); keys];
        let mut outcomes: Vec<Option<(Op, Ret)>> = (0..n).map(|_| None).collect();
        for &i in &by_effect {
            let p = &planned[i];
            let key = format!("key{}", p.key);
            let reg = &mut registers[p.key];
            let (op, ret) = match p.kind {
                Kind::Get => (Op::get(&key), Ret::Value(reg.clone())),
                Kind::Put => {
                    *reg = Some(p.value.clone());
                    written[p.key].push(p.value.clone());
                    (Op::put(&key, &p.value), Ret::Done)
                }
                Kind::Delete => {
                    *reg = None;
                    (Op::delete(&key), Ret::Done)
                }
                Kind::Cas => {
                    // Mostly expect the current value (as a client that just
                    // read it would), else a recent one (it lost a race) or
                    // any older one.
                    let w = &written[p.key];
                    let expected = match rng.below(100) {
                        _ if w.is_empty() => reg.clone(),
                        0..=59 => reg.clone(),
                        60..=84 => {
                            let back = (rng.below(3) as usize + 1).min(w.len());
                            Some(w[w.len() - back].clone())
                        }
                        _ => Some(w[rng.below(w.len() as u64) as usize].clone()),
                    };
                    let swapped = *reg == expected;
                    if swapped {
                        *reg = Some(p.value.clone());
                        written[p.key].push(p.value.clone());
                    }
                    (
                        Op::cas(&key, expected.as_deref(), &p.value),
                        Ret::Swapped(swapped),
                    )
                }
            };
            outcomes[i] = Some((op, ret));
        }
        planned
            .iter()
            .zip(outcomes)
            .map(|(p, outcome)| {
                let key = format!("key{}", p.key);
                let (op, ret) = outcome.unwrap_or_else(|| {
                    // An unknown op that never took effect.
                    let op = match p.kind {
                        Kind::Get => Op::get(&key),
                        Kind::Put => Op::put(&key, &p.value),
                        Kind::Delete => Op::delete(&key),
                        Kind::Cas => Op::cas(&key, None, &p.value),
                    };
                    (op, Ret::Done)
                });
                if p.unknown {
                    Event::unknown(p.client, op, p.call)
                } else {
                    Event::ok(p.client, op, p.call, p.ret, ret)
                }
            })
            .collect()
    }

    #[test]
    fn large_generated_history() {
        let h = generate(42, 8, 5, 5_000, 5);
        assert_eq!(h.len(), 5_000);
        let unknown = h.iter().filter(|e| e.outcome == Outcome::Unknown).count();
        assert!(unknown > 150 && unknown < 350, "{unknown} unknown");

        let t = Instant::now();
        let v = check(&h, BUDGET);
        println!(
            "large history: 5000 ops, 5 keys, 8 clients, {unknown} unknown: {v} in {:?}",
            t.elapsed()
        );
        assert_eq!(v, Verdict::Linearizable, "{v}");

        // Mutate a completed read in the middle to a value never written.
        let mut bad = h.clone();
        let target = (bad.len() / 2..bad.len())
            .find(|&i| {
                matches!(bad[i].op, Op::Get { .. }) && matches!(bad[i].outcome, Outcome::Ok(_))
            })
            .expect("the generated history has completed reads");
        bad[target].outcome = Outcome::Ok(Ret::Value(Some("never-written".into())));
        let t = Instant::now();
        let v = check(&bad, BUDGET);
        println!("never-written read: {:?}", t.elapsed());
        match v {
            Verdict::NotLinearizable { key, explanation } => {
                assert_eq!(key, bad[target].op.key());
                assert!(
                    explanation.contains(&format!("#{target} ")),
                    "{explanation}"
                );
                assert!(explanation.contains("\"never-written\""), "{explanation}");
            }
            v => panic!("expected NotLinearizable, got {v}"),
        }

        // A stale read in the middle: refuting it takes a full search of
        // everything before it.
        let (target, bad) = stale_read(&h, h.len() / 2).expect("a stale read can be planted");
        let t = Instant::now();
        let v = check(&bad, BUDGET);
        println!("stale read: refuted in {:?}", t.elapsed());
        match v {
            Verdict::NotLinearizable { key, explanation } => {
                assert_eq!(key, bad[target].op.key());
                assert!(
                    explanation.contains(&format!("#{target} ")),
                    "{explanation}"
                );
            }
            v => panic!("expected NotLinearizable, got {v}"),
        }
    }

    /// Plants a stale read: the first completed read at or after `from`
    /// returns the value of a completed put that was overwritten by another
    /// completed write before the read was called. Values are unique, so
    /// nothing can have written it again.
    fn stale_read(h: &[Event], from: usize) -> Option<(usize, Vec<Event>)> {
        let is_ok = |e: &Event| matches!(e.outcome, Outcome::Ok(_));
        for g in from..h.len() {
            let read = &h[g];
            if !matches!(read.op, Op::Get { .. }) || !is_ok(read) {
                continue;
            }
            let key = read.op.key();
            let writes = |e: &&Event| {
                e.op.key() == key && is_ok(e) && matches!(e.op, Op::Put { .. } | Op::Delete { .. })
            };
            let overwritten = h.iter().filter(writes).find_map(|p| {
                let Op::Put { value, .. } = &p.op else {
                    return None;
                };
                h.iter()
                    .filter(writes)
                    .any(|w| w.call > p.ret && w.ret < read.call)
                    .then(|| value.clone())
            });
            if let Some(value) = overwritten {
                let mut bad = h.to_vec();
                bad[g].outcome = Outcome::Ok(Ret::Value(Some(value)));
                return Some((g, bad));
            }
        }
        None
    }

    #[test]
    fn generated_histories_with_many_seeds() {
        for seed in 1..=20 {
            let h = generate(seed, 6, 2, 600, 10);
            let v = check(&h, BUDGET);
            assert_eq!(v, Verdict::Linearizable, "seed {seed}: {v}");
            let Some((target, bad)) = stale_read(&h, h.len() / 3) else {
                continue;
            };
            match check(&bad, BUDGET) {
                Verdict::NotLinearizable { key, .. } => assert_eq!(key, bad[target].op.key()),
                v => panic!("seed {seed}: expected NotLinearizable, got {v}"),
            }
        }
    }

    #[test]
    fn timeout_with_tiny_budget() {
        let h = generate(7, 8, 5, 5_000, 5);
        let v = check(&h, Duration::ZERO);
        assert!(matches!(v, Verdict::Timeout { .. }), "{v}");
    }

    #[test]
    fn timeout_on_pathological_history() {
        // 40 fully concurrent puts of distinct values, then reads of two of
        // them one after the other: refuting that means trying every subset
        // of the puts.
        let mut h: Vec<Event> = (0..40)
            .map(|c| done(c, Op::put("k", format!("p{c}")), 0, 1_000))
            .collect();
        h.push(read(40, "k", 2_000, 3_000, Some("p0")));
        h.push(read(40, "k", 4_000, 5_000, Some("p1")));
        let t = Instant::now();
        let v = check(&h, Duration::from_millis(200));
        let elapsed = t.elapsed();
        assert_eq!(v, Verdict::Timeout { key: "k".into() });
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    }
}
