//! Progress of a long phase (training steps, encoding passes): a bar on a terminal, log lines
//! anywhere else.
//!
//! indicatif hides its bars when stderr is not a terminal, which left `hybrid-ir reproduce
//! 2> log.txt` silent for minutes at a time. [`Progress`] draws the bar on a terminal and, when
//! stderr is a file or a pipe, logs a `tracing` line per phase at its start, at most every
//! [`LineSchedule::max_gap`] (and at each tenth of the way, no closer than
//! [`LineSchedule::min_gap`]) and at its end, each with counts, a rate and an ETA, so a log stays
//! short and readable in any length of run. The line timing lives in [`LineLog`], which takes the
//! time as an argument so it is tested without sleeping.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing (`--no-progress`, library use).
    Hidden,
    /// An indicatif bar on stderr.
    Bar,
    /// `tracing` info lines at a bounded rate.
    Lines,
}

impl ProgressMode {
    /// A bar when stderr is a terminal, lines otherwise; [`ProgressMode::Hidden`] when not `enabled`.
    pub fn detect(enabled: bool) -> Self {
        match (enabled, std::io::stderr().is_terminal()) {
            (false, _) => Self::Hidden,
            (true, true) => Self::Bar,
            (true, false) => Self::Lines,
        }
    }
}

/// When [`LineLog`] writes a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSchedule {
    /// A line at least this often while the phase advances.
    pub max_gap: Duration,
    /// Lines for each tenth of the way come no closer than this (a phase of a few seconds logs
    /// its start and end only).
    pub min_gap: Duration,
}

impl Default for LineSchedule {
    fn default() -> Self {
        Self { max_gap: Duration::from_secs(30), min_gap: Duration::from_secs(5) }
    }
}

/// The line logic of [`Progress`] without the clock: feed it positions and elapsed times, and it
/// says which updates deserve a line and what the line reads.
#[derive(Debug, Clone)]
pub struct LineLog {
    what: String,
    unit: String,
    total: u64,
    schedule: LineSchedule,
    /// Position and time at the start (a resumed run starts past 0; its rate counts new work only).
    start: (u64, Duration),
    /// Time of the last line written.
    last_line: Duration,
    /// Tenths of the way reached at the last line.
    last_tenth: u64,
    message: String,
    finished: bool,
}

impl LineLog {
    /// A phase `what` of `total` `unit`s (e.g. "steps", "texts").
    pub fn new(what: impl Into<String>, unit: impl Into<String>, total: u64, schedule: LineSchedule) -> Self {
        Self {
            what: what.into(),
            unit: unit.into(),
            total,
            schedule,
            start: (0, Duration::ZERO),
            last_line: Duration::ZERO,
            last_tenth: 0,
            message: String::new(),
            finished: false,
        }
    }

    /// The line that opens the phase, at position `pos` (not 0 when resuming) and time `now`.
    pub fn start(&mut self, pos: u64, now: Duration) -> String {
        self.start = (pos, now);
        self.last_line = now;
        self.last_tenth = self.tenths(pos);
        if pos > 0 {
            format!("{}: starting at {pos}/{} {}", self.what, self.total, self.unit)
        } else {
            format!("{}: {} {}", self.what, self.total, self.unit)
        }
    }

    /// Sets the free text appended to each line (the trainer's loss, for example).
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
    }

    /// A line for position `pos` at time `now`, when one is due: `max_gap` since the last line,
    /// or a new tenth of the way and at least `min_gap` since the last line.
    pub fn update(&mut self, pos: u64, now: Duration) -> Option<String> {
        if self.finished {
            return None;
        }
        let since = now.saturating_sub(self.last_line);
        let tenth = self.tenths(pos);
        let due = since >= self.schedule.max_gap || (tenth > self.last_tenth && since >= self.schedule.min_gap);
        if !due {
            return None;
        }
        self.last_line = now;
        self.last_tenth = tenth;
        let elapsed = now.saturating_sub(self.start.1);
        let rate = rate(pos.saturating_sub(self.start.0), elapsed);
        let percent = if self.total > 0 { 100.0 * pos as f64 / self.total as f64 } else { 100.0 };
        let eta = if rate > 0.0 && pos < self.total {
            format!(", ETA {}", clock(Duration::from_secs_f64((self.total - pos) as f64 / rate)))
        } else {
            String::new()
        };
        Some(format!(
            "{}: {pos}/{} {} ({percent:.0}%), {} {}/s, elapsed {}{eta}{}",
            self.what,
            self.total,
            self.unit,
            rate_text(rate),
            self.unit,
            clock(elapsed),
            self.suffix()
        ))
    }

    /// The line that closes the phase at position `pos` and time `now` (once; later calls give `None`).
    pub fn finish(&mut self, pos: u64, now: Duration) -> Option<String> {
        if self.finished {
            return None;
        }
        self.finished = true;
        let elapsed = now.saturating_sub(self.start.1);
        let done = pos.saturating_sub(self.start.0);
        Some(format!(
            "{}: done, {done} {} in {} ({} {}/s){}",
            self.what,
            self.unit,
            clock(elapsed),
            rate_text(rate(done, elapsed)),
            self.unit,
            self.suffix()
        ))
    }

    fn tenths(&self, pos: u64) -> u64 {
        // An empty phase is all done.
        (pos.min(self.total) * 10).checked_div(self.total).unwrap_or(10)
    }

    fn suffix(&self) -> String {
        if self.message.is_empty() { String::new() } else { format!(", {}", self.message) }
    }
}

fn rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { done as f64 / secs } else { 0.0 }
}

/// Three significant figures at most: 0.123, 12.3, 1234.
fn rate_text(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

/// `1h02m03s`, `4m05s`, `6s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

enum Sink {
    Hidden,
    Bar(ProgressBar),
    Lines { log: Mutex<LineLog>, started: Instant, pos: Mutex<u64> },
}

/// Progress of one phase, shown as [`ProgressMode`] says. Methods take `&self`, so a `Progress`
/// can be updated from the `FnMut(usize)` callbacks of the encoding functions.
pub struct Progress {
    sink: Sink,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.sink {
            Sink::Hidden => ProgressMode::Hidden,
            Sink::Bar(_) => ProgressMode::Bar,
            Sink::Lines { .. } => ProgressMode::Lines,
        };
        f.debug_struct("Progress").field("mode", &mode).finish()
    }
}

impl Progress {
    /// A phase `what` of `total` `unit`s, shown as [`ProgressMode::detect`]`(enabled)` says.
    pub fn new(enabled: bool, what: &str, unit: &str, total: u64) -> Self {
        Self::with_mode(ProgressMode::detect(enabled), what, unit, total, 0)
    }

    /// A phase resumed at `start` of `total`, shown in `mode`.
    pub fn with_mode(mode: ProgressMode, what: &str, unit: &str, total: u64, start: u64) -> Self {
        let sink = match mode {
            ProgressMode::Hidden => Sink::Hidden,
            ProgressMode::Bar => {
                let bar = ProgressBar::new(total);
                let template =
                    format!("{{elapsed_precise}} {{prefix}} [{{wide_bar}}] {{pos}}/{{len}} {unit} {{msg}} ETA {{eta_precise}}");
                // The template is fixed but for the unit word; fall back to indicatif's default
                // rather than fail a run over a cosmetic.
                let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar.set_prefix(what.to_string());
                bar.set_position(start);
                Sink::Bar(bar)
            }
            ProgressMode::Lines => {
                let mut log = LineLog::new(what, unit, total, LineSchedule::default());
                tracing::info!("{}", log.start(start, Duration::ZERO));
                Sink::Lines { log: Mutex::new(log), started: Instant::now(), pos: Mutex::new(start) }
            }
        };
        Self { sink }
    }

    /// Moves to position `pos`.
    pub fn set_position(&self, pos: u64) {
        match &self.sink {
            Sink::Hidden => {}
            Sink::Bar(bar) => bar.set_position(pos),
            Sink::Lines { log, started, pos: last } => {
                *lock(last) = pos;
                if let Some(line) = lock(log).update(pos, started.elapsed()) {
                    tracing::info!("{line}");
                }
            }
        }
    }

    /// Free text after the counts: on the bar, or in the next line logged.
    pub fn set_message(&self, message: String) {
        match &self.sink {
            Sink::Hidden => {}
            Sink::Bar(bar) => bar.set_message(message),
            Sink::Lines { log, .. } => lock(log).set_message(message),
        }
    }

    /// Ends the phase: clears the bar, or logs the closing line.
    pub fn finish(&self) {
        match &self.sink {
            Sink::Hidden => {}
            Sink::Bar(bar) => bar.finish_and_clear(),
            Sink::Lines { log, started, pos } => {
                let pos = *lock(pos);
                if let Some(line) = lock(log).finish(pos, started.elapsed()) {
                    tracing::info!("{line}");
                }
            }
        }
    }
}

/// A poisoned lock only means another update panicked; the counts are still good to print.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn lines_come_at_tenths_and_at_most_every_max_gap_never_closer_than_min_gap() {
        let mut log = LineLog::new("xquad-r: start model", "texts", 1000, LineSchedule::default());
        assert_eq!(log.start(0, secs(0)), "xquad-r: start model: 1000 texts");
        // Fast progress: the first tenth at 1 s is not logged (min gap 5 s), the second at 6 s is.
        assert_eq!(log.update(100, secs(1)), None);
        let line = log.update(200, secs(6)).unwrap();
        assert_eq!(line, "xquad-r: start model: 200/1000 texts (20%), 33.3 texts/s, elapsed 6s, ETA 24s");
        // The same tenth again: nothing until the max gap of 30 s has passed.
        assert_eq!(log.update(250, secs(20)), None);
        assert_eq!(log.update(260, secs(35)), None);
        let line = log.update(270, secs(36)).unwrap();
        assert!(line.starts_with("xquad-r: start model: 270/1000 texts (27%), 7.50 texts/s, elapsed 36s, ETA 1m37s"), "{line}");
        log.set_message("loss 2.31");
        let line = log.update(300, secs(41)).unwrap();
        assert!(line.ends_with(", loss 2.31"), "{line}");
        let done = log.finish(1000, secs(100)).unwrap();
        assert_eq!(done, "xquad-r: start model: done, 1000 texts in 1m40s (10.0 texts/s), loss 2.31");
        // Closed: nothing more.
        assert_eq!(log.update(1000, secs(500)), None);
        assert_eq!(log.finish(1000, secs(500)), None);
    }

    #[test]
    fn a_long_phase_logs_a_bounded_number_of_lines() {
        // 10 000 steps over 2 hours, one update a second: at most one line per 30 s (240) plus
        // the tenths, and at least one per 30 s so a log never goes quiet longer than that.
        let mut log = LineLog::new("train", "steps", 7200, LineSchedule::default());
        log.start(0, secs(0));
        let mut times = vec![0];
        for s in 1..=7200u64 {
            if log.update(s, secs(s)).is_some() {
                times.push(s);
            }
        }
        assert!(times.len() <= 7200 / 30 + 1, "{} lines", times.len());
        assert!(times.windows(2).all(|w| w[1] - w[0] <= 30 && w[1] - w[0] >= 5), "{times:?}");
    }

    #[test]
    fn a_resumed_phase_rates_only_new_work_and_empty_phases_do_not_divide_by_zero() {
        let mut log = LineLog::new("train", "steps", 100, LineSchedule::default());
        assert_eq!(log.start(40, secs(0)), "train: starting at 40/100 steps");
        let line = log.update(60, secs(10)).unwrap();
        assert_eq!(line, "train: 60/100 steps (60%), 2.00 steps/s, elapsed 10s, ETA 20s");
        let mut empty = LineLog::new("nothing", "texts", 0, LineSchedule::default());
        empty.start(0, secs(0));
        assert_eq!(empty.update(0, secs(0)), None);
        assert_eq!(empty.finish(0, secs(0)).unwrap(), "nothing: done, 0 texts in 0s (0.00 texts/s)");
    }

    #[test]
    fn hidden_progress_ignores_every_call() {
        let p = Progress::with_mode(ProgressMode::Hidden, "x", "texts", 3, 0);
        p.set_position(1);
        p.set_message("m".into());
        p.finish();
        assert_eq!(format!("{p:?}"), "Progress { mode: Hidden }");
    }
}
