//! What a scenario reports: the table of medians per server and their
//! ratios ([`Summary`]), latency histograms, tallies of examples, and how
//! figures are shown.

use crate::harness::Outcome;

/// One scenario's figures: the median of each over the runs, per server.
pub(crate) struct Summary {
    pub(crate) title: String,
    pub(crate) runs: usize,
    /// Who was measured, in column order; the first is compared with the
    /// others.
    pub(crate) labels: Vec<String>,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
}

/// One figure of a summary: the median per server, in `kinds`' order.
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) show: fn(f64) -> String,
    pub(crate) medians: Vec<Option<f64>>,
}

impl Summary {
    pub(crate) fn new(
        title: &str,
        runs: usize,
        outcomes: Vec<(String, Vec<Outcome>)>,
        failures: Vec<String>,
    ) -> Summary {
        let mut rows: Vec<Row> = Vec::new();
        for (_, runs) in &outcomes {
            for figure in runs.iter().flat_map(|o| &o.figures) {
                if !rows.iter().any(|row| row.name == figure.name) {
                    rows.push(Row {
                        name: figure.name,
                        show: figure.show,
                        medians: Vec::new(),
                    });
                }
            }
        }
        for Row { name, medians, .. } in &mut rows {
            for (_, runs) in &outcomes {
                let values: Vec<f64> = runs
                    .iter()
                    .flat_map(|o| &o.figures)
                    .filter(|f| f.name == *name)
                    .map(|f| f.value)
                    .collect();
                medians.push(median(values));
            }
        }
        let mut notes = failures;
        for (kind, runs) in &outcomes {
            let mut seen: Vec<(&str, usize)> = Vec::new();
            for note in runs.iter().flat_map(|o| &o.notes) {
                match seen.iter_mut().find(|(n, _)| n == note) {
                    Some((_, times)) => *times += 1,
                    None => seen.push((note, 1)),
                }
            }
            for (note, times) in seen {
                let times = if times > 1 {
                    format!(" ({times} runs)")
                } else {
                    String::new()
                };
                notes.push(format!("{kind}: {note}{times}"));
            }
        }
        Summary {
            title: title.to_owned(),
            runs,
            labels: outcomes.into_iter().map(|(label, _)| label).collect(),
            rows,
            notes,
        }
    }

    pub(crate) fn print(&self) {
        // wshub against the others, or (one server, several setups) the
        // first setup against the rest.
        let base = match self.labels.is_empty() {
            true => None,
            false => Some(self.labels.iter().position(|l| l == "wshub").unwrap_or(0)),
        };
        let others: Vec<usize> = match base {
            Some(w) => (0..self.labels.len()).filter(|&i| i != w).collect(),
            None => Vec::new(),
        };
        println!(
            "\n== summary: {} (median of {} run{} per server)",
            self.title,
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        );
        // Figure names longer than 26 characters widen the column.
        let width = self
            .rows
            .iter()
            .map(|row| row.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(26);
        let mut line = format!("  {:<width$}", "figure");
        for label in &self.labels {
            line += &format!(" {label:>14}");
        }
        if let Some(b) = base {
            for &o in &others {
                let ratio = format!("{}/{}", self.labels[b], self.labels[o]);
                line += &format!(" {ratio:>12}");
            }
        }
        println!("{line}");
        for Row {
            name,
            show,
            medians,
        } in &self.rows
        {
            let mut line = format!("  {name:<width$}");
            for value in medians {
                line += &format!(" {:>14}", value.map_or("-".to_owned(), show));
            }
            if let Some(w) = base {
                for &o in &others {
                    let ratio = match (medians[w], medians[o]) {
                        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
                        _ => "-".to_owned(),
                    };
                    line += &format!(" {ratio:>12}");
                }
            }
            println!("{line}");
        }
        for note in &self.notes {
            println!("  !! {note}");
        }
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Latencies in microseconds, in buckets about 3% wide: 32 per power of two.
#[derive(Clone)]
pub(crate) struct Histogram {
    pub(crate) counts: Vec<u64>,
    pub(crate) n: u64,
    pub(crate) max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; 60 * 32],
            n: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub(crate) fn bucket(value: u64) -> usize {
        if value < 32 {
            return value as usize;
        }
        let exp = 63 - value.leading_zeros() as usize; // 5 and up
        let mantissa = (value >> (exp - 5)) as usize & 31;
        (exp - 4) * 32 + mantissa
    }

    /// The smallest value of bucket `i`.
    pub(crate) fn floor(i: usize) -> u64 {
        if i < 32 {
            return i as u64;
        }
        let exp = i / 32 + 4;
        ((32 + i % 32) as u64) << (exp - 5)
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.counts[Self::bucket(micros)] += 1;
        self.n += 1;
        self.max = self.max.max(micros);
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// The value below which a share `q` of the samples fall (NaN if none).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (Self::floor(i) as f64).min(self.max as f64);
            }
        }
        self.max as f64
    }

    pub(crate) fn summary(&self) -> String {
        if self.n == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {}  p99 {}  max {}  (n={})",
            show_us(self.quantile(0.5)),
            show_us(self.quantile(0.99)),
            show_us(self.max as f64),
            self.n
        )
    }
}

/// How often something happened, with the first few distinct examples.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) count: usize,
    pub(crate) examples: Vec<String>,
    pub(crate) last: Option<String>,
}

impl Tally {
    pub(crate) fn add(&mut self, example: String) {
        self.count += 1;
        if self.examples.contains(&example) {
            return;
        }
        if self.examples.len() < 3 {
            self.examples.push(example);
        } else {
            self.last = Some(example);
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.count += other.count;
        for example in other.examples {
            if !self.examples.contains(&example) && self.examples.len() < 3 {
                self.examples.push(example);
            }
        }
        self.last = other.last.or(self.last.take());
    }

    pub(crate) fn summary(&self) -> String {
        match self.count {
            0 => "0".to_owned(),
            n => {
                let mut shown = self.examples.join(" | ");
                if let Some(last) = &self.last {
                    shown = format!("{shown} ... last: {last}");
                }
                format!("{n} (e.g. {shown})")
            }
        }
    }
}

/// A server's stderr lines, the first thousand kept.
#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<String>,
    pub(crate) count: usize,
}

impl Lines {
    pub(crate) fn add(&mut self, line: String) {
        self.count += 1;
        if self.lines.len() < 1000 {
            self.lines.push(line);
        }
    }

    pub(crate) fn summary(&self) -> String {
        match self.count {
            0 => "none".to_owned(),
            n => {
                let shown: Vec<&str> = self.lines.iter().take(3).map(String::as_str).collect();
                format!("{n} line(s), e.g. {}", shown.join(" | "))
            }
        }
    }
}

pub(crate) fn show_ns(ns: f64) -> String {
    match ns {
        ns if ns.is_nan() => "-".to_owned(),
        ns if ns < 1_000.0 => format!("{ns:.0} ns"),
        ns => show_us(ns / 1e3),
    }
}

pub(crate) fn show_us(us: f64) -> String {
    match us {
        us if us.is_nan() => "-".to_owned(),
        us if us < 1_000.0 => format!("{us:.0} µs"),
        us if us < 1_000_000.0 => format!("{:.2} ms", us / 1e3),
        us => format!("{:.2} s", us / 1e6),
    }
}

/// A whole number with thin spaces between thousands: `1 234 567`.
pub(crate) fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A size in bytes, whole below 10 KB.
pub(crate) fn bytes(value: f64) -> String {
    match value {
        v if v.is_nan() => "-".to_owned(),
        v if v < 10_000.0 => format!("{v:.0} B"),
        v if v < 10_000_000.0 => format!("{:.1} KB", v / 1e3),
        v => format!("{:.1} MB", v / 1e6),
    }
}

pub(crate) fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

pub(crate) fn kib(value: f64) -> String {
    format!("{value:.1} KiB")
}

pub(crate) fn count(value: f64) -> String {
    format!("{value:.0}")
}

pub(crate) fn two_places(value: f64) -> String {
    format!("{value:.2}")
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn table(rows: &[(String, String)]) {
    for (label, value) in rows {
        println!("  {label:<34} {value}");
    }
}
