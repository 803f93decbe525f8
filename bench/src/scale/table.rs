//! The figures of a part, by broker and size, printed with their growth
//! between sizes.

use serde_json::Value;

use super::Figure;

/// Figures by broker and size, printed with their growth between sizes.
pub(super) struct Table {
    part: &'static str,
    rows: Vec<(&'static str, usize, Vec<Figure>)>,
}

impl Table {
    pub(super) fn new(part: &'static str) -> Table {
        Table {
            part,
            rows: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, broker: &'static str, size: usize, figures: Vec<Figure>) {
        let json: serde_json::Map<String, Value> = figures
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    Value::from((f.value * 1000.0).round() / 1000.0),
                )
            })
            .collect();
        println!(
            "BENCH scale part={} broker={broker} size={size} {}",
            self.part,
            Value::Object(json)
        );
        self.rows.push((broker, size, figures));
    }

    pub(super) fn print(&self) {
        println!(
            "\n{} — figure per size (growth from the size before; linear: a total grows with the size, a per-item figure stays at 1.0x)",
            self.part
        );
        let mut brokers: Vec<&str> = Vec::new();
        for (broker, _, _) in &self.rows {
            if !brokers.contains(broker) {
                brokers.push(broker);
            }
        }
        for broker in brokers {
            let rows: Vec<_> = self.rows.iter().filter(|r| r.0 == broker).collect();
            println!("\n  {broker}");
            let Some((_, _, first)) = rows.first() else {
                continue;
            };
            for (i, figure) in first.iter().enumerate() {
                let mut line = format!("    {:<20}", format!("{} ({})", figure.name, figure.unit));
                let mut previous: Option<(usize, f64)> = None;
                for (_, size, figures) in &rows {
                    let value = figures[i].value;
                    line.push_str(&format!("  {size:>6}: {value:>10.3}"));
                    if let Some((last_size, last)) = previous
                        && last > 0.0
                    {
                        let kind = if figure.per_item {
                            1.0
                        } else {
                            *size as f64 / last_size as f64
                        };
                        line.push_str(&format!(" ({:.1}x, linear {:.1}x)", value / last, kind));
                    }
                    previous = Some((*size, value));
                }
                println!("{line}");
            }
        }
    }
}
