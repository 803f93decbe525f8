//! One side's figure of a round, with the CPU time the host stole while
//! it was measured.

use super::summary::format_value;
use crate::steal;

/// One figure of a round, with the share of CPU time the host stole
/// while it was measured ([`steal`]).
#[derive(Clone, Copy)]
pub(super) struct Figure {
    pub value: f64,
    pub steal: f64,
}

/// Measures one side of a round.
pub(super) async fn figure(
    work: impl Future<Output = anyhow::Result<f64>>,
) -> anyhow::Result<Figure> {
    let (value, steal) = steal::measured(work).await;
    Ok(Figure {
        value: value?,
        steal,
    })
}

/// "wasqd 2.90M (steal 0%)  nsqd 976.4k (steal 1%)".
pub(super) fn both_figures(ours: Figure, baseline: &str, theirs: Figure) -> String {
    format!(
        "wasqd {}{}  {} {}{}",
        format_value(ours.value),
        steal::describe(ours.steal),
        baseline,
        format_value(theirs.value),
        steal::describe(theirs.steal)
    )
}

/// No baseline for this row.
pub(super) const NO_FIGURE: Figure = Figure {
    value: f64::NAN,
    steal: f64::NAN,
};
