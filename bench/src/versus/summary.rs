//! A row's rounds summed up: medians, the ratio, whether its targets were
//! met, as a table line and a `BENCH {json}` line.

use super::rows::{Better, Row};

/// A row's rounds and what they mean.
pub(super) struct Summary {
    pub row: &'static Row,
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
    /// The share of CPU time stolen by the host during each figure.
    pub steal: Vec<f64>,
    /// The PUB and /pub rows' do-nothing OK server, one per round; empty
    /// for the others.
    pub ok_servers: Vec<f64>,
    /// Measured with the CPUs kept awake (`--awake`).
    pub awake: bool,
}

/// What wasqd must reach of the do-nothing server's figure on a row the
/// do-nothing server itself cannot meet (issue 33).
const SHARE_OF_OK_SERVER: f64 = 0.9;

/// How many times better `a` is than `b`, in `better`'s sense.
pub(super) fn times_better(better: Better, a: f64, b: f64) -> f64 {
    match better {
        Better::Higher => a / b,
        Better::Lower => b / a,
    }
}

impl Summary {
    /// The median of the per-round ratios of `a` over `b` (rounds pair up:
    /// on this machine a round's two figures share its noise, so their
    /// ratio moves less than either).
    fn per_round(&self, a: &[f64], b: &[f64]) -> f64 {
        let ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(&a, &b)| times_better(self.row.better, a, b))
            .collect();
        median(&ratios)
    }

    /// How many times better than the baseline wasqd is.
    fn ratio(&self) -> f64 {
        self.per_round(&self.ours, &self.theirs)
    }

    /// How many times better than the baseline the do-nothing server is.
    fn ok_server_ratio(&self) -> Option<f64> {
        (!self.ok_servers.is_empty()).then(|| self.per_round(&self.ok_servers, &self.theirs))
    }

    /// wasqd's figure as a share of the do-nothing server's (per round, for
    /// the rows that measure one): how much of what the client and the
    /// loopback allow wasqd reaches.
    fn share_of_ok_server(&self) -> Option<f64> {
        (!self.ok_servers.is_empty()).then(|| self.per_round(&self.ours, &self.ok_servers))
    }

    /// Whether the row met its targets; `None` for a reference row, which
    /// has none. A ratio the do-nothing server itself does not reach is met
    /// at [`SHARE_OF_OK_SERVER`] of that server's figure.
    fn met(&self) -> Option<bool> {
        if self.row.ratio_target.is_none() && self.row.absolute_target.is_none() {
            return None;
        }
        let ratio_met = self.row.ratio_target.is_none_or(|t| {
            self.ratio() >= t
                || self.ok_server_ratio().is_some_and(|ok| ok < t)
                    && self
                        .share_of_ok_server()
                        .is_some_and(|share| share >= SHARE_OF_OK_SERVER)
        });
        let absolute_met = self
            .row
            .absolute_target
            .is_none_or(|t| match self.row.better {
                Better::Higher => median(&self.ours) >= t,
                Better::Lower => median(&self.ours) <= t,
            });
        Some(ratio_met && absolute_met)
    }

    fn target(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ratio) = self.row.ratio_target {
            parts.push(format!("≥ {ratio}x"));
        }
        if let Some(absolute) = self.row.absolute_target {
            let sign = if self.row.better == Better::Higher {
                "≥"
            } else {
                "≤"
            };
            parts.push(format!(
                "{sign} {} {}",
                format_value(absolute),
                self.row.unit
            ));
        }
        if parts.is_empty() {
            "— (reference)".to_string()
        } else {
            parts.join(", ")
        }
    }

    pub fn json(&self) -> String {
        serde_json::json!({
            "row": self.row.id,
            "unit": self.row.unit,
            "baseline": self.row.baseline,
            "wasqd": self.ours,
            "baseline_values": self.theirs,
            "wasqd_median": median(&self.ours),
            "baseline_median": median(&self.theirs),
            "ratio": self.ratio(),
            "ratio_is": "median of per-round ratios",
            "ratio_target": self.row.ratio_target,
            "absolute_target": self.row.absolute_target,
            "met": self.met(),
            "ok_server": self.ok_servers,
            "ok_server_median": (!self.ok_servers.is_empty()).then(|| median(&self.ok_servers)),
            "ok_server_ratio": self.ok_server_ratio(),
            "share_of_ok_server": self.share_of_ok_server(),
            "awake": self.awake,
            "max_steal": self.max_steal(),
        })
        .to_string()
    }

    /// The largest share of CPU time stolen during one of the figures
    /// (`NaN` when unknown).
    pub fn max_steal(&self) -> f64 {
        self.steal
            .iter()
            .copied()
            .filter(|s| !s.is_nan())
            .reduce(f64::max)
            .unwrap_or(f64::NAN)
    }

    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} {} | {} {} | {} | {} | {} | {} | {} | {} | {} |",
            self.row.id,
            format_value(median(&self.ours)),
            self.row.unit,
            format_value(median(&self.theirs)),
            self.row.baseline,
            match self.ratio() {
                r if r.is_nan() => "—".to_string(),
                r => format!("{r:.2}x"),
            },
            self.target(),
            match self.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            },
            match self.ok_servers.is_empty() {
                true => "—".to_string(),
                false => format_value(median(&self.ok_servers)),
            },
            match self.ok_server_ratio() {
                Some(r) => format!("{r:.2}x"),
                None => "—".to_string(),
            },
            match self.share_of_ok_server() {
                Some(share) => format!("{:.0}%", share * 100.0),
                None => "—".to_string(),
            },
            match self.max_steal() {
                s if s.is_nan() => "—".to_string(),
                s => format!("{:.0}%", s * 100.0),
            }
        )
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// 2 412 345 → "2.41M", 7 612 → "7.6k", 312.4 → "312".
pub(super) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "—".to_string()
    } else if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
