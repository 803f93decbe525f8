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

impl Summary {
    /// How many times better than the baseline wasqd is (medians).
    fn ratio(&self) -> f64 {
        let (ours, theirs) = (median(&self.ours), median(&self.theirs));
        match self.row.better {
            Better::Higher => ours / theirs,
            Better::Lower => theirs / ours,
        }
    }

    /// Whether the row met its targets; `None` for a reference row, which has none.
    fn met(&self) -> Option<bool> {
        if self.row.ratio_target.is_none() && self.row.absolute_target.is_none() {
            return None;
        }
        let ratio_met = self.row.ratio_target.is_none_or(|t| self.ratio() >= t);
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
            "ratio_target": self.row.ratio_target,
            "absolute_target": self.row.absolute_target,
            "met": self.met(),
            "ok_server": self.ok_servers,
            "ok_server_median": (!self.ok_servers.is_empty()).then(|| median(&self.ok_servers)),
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

    /// wasqd's median as a share of the do-nothing OK server's, for the
    /// rows that measure one: how much of what the client and the loopback
    /// allow wasqd reaches.
    fn share_of_ok_server(&self) -> Option<f64> {
        (!self.ok_servers.is_empty()).then(|| median(&self.ours) / median(&self.ok_servers))
    }

    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} {} | {} {} | {} | {} | {} | {} | {} |",
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
