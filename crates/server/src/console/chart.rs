//! Graphs drawn on the server as SVG shapes (no charting library, no script): a line per
//! series over time, a band for a session's state, and a mark per event. Pure: samples
//! in, shapes out; `chart.html` draws them.

use serde::Serialize;
use serde_json::Value;

const W: f64 = 720.0;
const H: f64 = 150.0;
/// Room for the y axis's labels, and the x axis's.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 10.0;

#[derive(Debug, Serialize, PartialEq)]
pub struct Line {
    pub d: String,
    pub class: &'static str,
    pub label: &'static str,
    /// The last value, as the legend shows it.
    pub last: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Band {
    pub x: f64,
    pub w: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Mark {
    pub x: f64,
    pub class: String,
    pub title: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub top: f64,
    pub plot_w: f64,
    pub plot_h: f64,
    pub lines: Vec<Line>,
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// Nothing to draw yet.
    pub empty: bool,
}

/// One series: its name, CSS class and where its value is in a sample (JSON, as the API
/// gives it).
pub struct Series {
    pub label: &'static str,
    pub class: &'static str,
    pub field: &'static str,
}

/// The time axis: `from`..`to` in unix ms.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

impl Span {
    fn x(&self, at: i64) -> f64 {
        let w = W - LEFT - RIGHT;
        let f = (at - self.from) as f64 / (self.to - self.from).max(1) as f64;
        LEFT + (f.clamp(0.0, 1.0) * w * 10.0).round() / 10.0
    }

    fn ticks(&self) -> Vec<Tick> {
        let span = self.to - self.from;
        let step = if span <= 3_600_000 {
            600_000
        } else {
            4 * 3_600_000
        };
        let mut t = self.from - self.from.rem_euclid(step) + step;
        let mut out = Vec::new();
        while t < self.to {
            out.push(Tick {
                at: self.x(t),
                label: clock(t),
            });
            t += step;
        }
        out
    }
}

/// `HH:MM` UTC.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, (day % 3600) / 60)
}

/// 1234567 → `1.23 M`.
pub fn si(v: f64) -> String {
    let (v, unit) = match v.abs() {
        x if x >= 1e9 => (v / 1e9, " G"),
        x if x >= 1e6 => (v / 1e6, " M"),
        x if x >= 1e3 => (v / 1e3, " k"),
        _ => (v, ""),
    };
    let s = if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!("{s}{unit}")
}

/// A round top for the y axis: 1, 2 or 5 times a power of ten.
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= max {
            return m * p;
        }
    }
    10.0 * p
}

fn frame(id: &'static str, title: &'static str, span: Span) -> Chart {
    Chart {
        id,
        title,
        width: W,
        height: H,
        left: LEFT,
        top: TOP,
        plot_w: W - LEFT - RIGHT,
        plot_h: H - TOP - BOTTOM,
        lines: vec![],
        bands: vec![],
        marks: vec![],
        y_ticks: vec![],
        x_ticks: span.ticks(),
        empty: true,
    }
}

fn at(s: &Value) -> Option<i64> {
    s.get("at").and_then(Value::as_i64)
}

/// Lines of `series` over `samples`; a gap where a sample has no value.
pub fn lines(
    id: &'static str,
    title: &'static str,
    samples: &[Value],
    span: Span,
    series: &[Series],
) -> Chart {
    let mut c = frame(id, title, span);
    let max = samples
        .iter()
        .flat_map(|s| series.iter().filter_map(|x| s.get(x.field)?.as_f64()))
        .fold(0.0, f64::max);
    let top = nice(max);
    let plot_h = c.plot_h;
    let y = |v: f64| ((TOP + plot_h - v / top * plot_h) * 10.0).round() / 10.0;
    for i in 0..=2 {
        let v = top * i as f64 / 2.0;
        c.y_ticks.push(Tick {
            at: y(v),
            label: si(v),
        });
    }
    for x in series {
        let mut d = String::new();
        let mut pen_up = true;
        let mut last = None;
        for s in samples {
            let (Some(t), Some(v)) = (at(s), s.get(x.field).and_then(Value::as_f64)) else {
                pen_up = true;
                continue;
            };
            d.push_str(&format!(
                "{}{} {} ",
                if pen_up { "M" } else { "L" },
                span.x(t),
                y(v)
            ));
            pen_up = false;
            last = Some(v);
        }
        if !d.is_empty() {
            c.empty = false;
        }
        c.lines.push(Line {
            d: d.trim_end().to_string(),
            class: x.class,
            label: x.label,
            last: last.map(si).unwrap_or_else(|| "—".into()),
        });
    }
    c
}

/// How far a sample's state is drawn when no sample follows soon: a gap in the reports
/// (an edge that stopped reporting) is left blank, not drawn as the last state.
const REACH_MS: i64 = 60_000;

/// The session's state as a band: green while ESTABLISHED, red otherwise, each sample
/// reaching to the next (at most [`REACH_MS`], or two of the window's minute samples).
pub fn states(samples: &[Value], span: Span) -> Chart {
    let mut c = frame("bgp-state", "BGP session", span);
    let reach = if span.to - span.from > 3_600_000 {
        2 * 60_000
    } else {
        REACH_MS
    };
    for (i, s) in samples.iter().enumerate() {
        let Some(t) = at(s) else { continue };
        let end = samples
            .get(i + 1)
            .and_then(at)
            .unwrap_or(span.to)
            .min(span.to)
            .min(t + reach);
        // A dual-stack connection's band is the worse of its two sessions.
        let v4 = s.get("state").and_then(Value::as_str).unwrap_or("");
        let v6 = s.get("stateIpv6").and_then(Value::as_str);
        let state = match v6 {
            Some(v6) if v4 == "ESTABLISHED" => v6,
            _ => v4,
        };
        let title = match v6 {
            Some(v6) => format!("IPv4 {v4}, IPv6 {v6}"),
            None => v4.to_string(),
        };
        let x = span.x(t);
        let w = (span.x(end) - x).max(1.0);
        let class = match state {
            "ESTABLISHED" => "ok",
            "CONNECT" | "OPEN_SENT" | "OPEN_CONFIRM" => "changing",
            _ => "bad",
        };
        // Neighbours in the same state are one band.
        match c.bands.last_mut() {
            Some(b) if b.class == class && (b.x + b.w - x).abs() < 1.5 => {
                b.w = x + w - b.x;
            }
            _ => c.bands.push(Band { x, w, class, title }),
        }
        c.empty = false;
    }
    c
}

/// Marks `events` (`at`, `kind`, `text`) on `chart`.
pub fn mark(chart: &mut Chart, events: &[Value], span: Span) {
    for e in events {
        let Some(t) = at(e) else { continue };
        if t < span.from || t > span.to {
            continue;
        }
        let kind = e.get("kind").and_then(Value::as_str).unwrap_or("");
        chart.marks.push(Mark {
            x: span.x(t),
            class: kind.to_lowercase().replace('_', "-"),
            title: format!(
                "{} {}",
                clock(t),
                e.get("text").and_then(Value::as_str).unwrap_or(kind)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_scale_to_a_round_top_and_break_at_gaps() {
        let span = Span {
            from: 0,
            to: 3_600_000,
        };
        let samples = [
            json!({"at": 0, "bitsToCloud": 800.0}),
            json!({"at": 1_800_000}),
            json!({"at": 3_600_000, "bitsToCloud": 1_600_000.0}),
        ];
        let c = lines(
            "t",
            "Traffic",
            &samples,
            span,
            &[Series {
                label: "to the cloud",
                class: "a",
                field: "bitsToCloud",
            }],
        );
        assert!(!c.empty);
        assert_eq!(c.y_ticks.last().map(|t| t.label.as_str()), Some("2 M"));
        let d = &c.lines[0].d;
        assert_eq!(d.matches('M').count(), 2, "a gap lifts the pen: {d}");
        assert_eq!(c.lines[0].last, "1.60 M");
        assert_eq!(c.x_ticks.len(), 5, "every 10 minutes inside the hour");
    }

    #[test]
    fn state_bands_join_neighbours_and_events_are_marked() {
        let span = Span {
            from: 0,
            to: 60_000,
        };
        let samples = [
            json!({"at": 0, "state": "ESTABLISHED"}),
            json!({"at": 10_000, "state": "ESTABLISHED"}),
            json!({"at": 20_000, "state": "IDLE"}),
            json!({"at": 30_000, "state": "ESTABLISHED"}),
        ];
        let mut c = states(&samples, span);
        let classes: Vec<&str> = c.bands.iter().map(|b| b.class).collect();
        assert_eq!(classes, ["ok", "bad", "ok"]);
        // Dual stack: the worse of the two sessions.
        let c3 = states(
            &[json!({"at": 0, "state": "ESTABLISHED", "stateIpv6": "IDLE"})],
            span,
        );
        assert_eq!(c3.bands[0].class, "bad");
        assert_eq!(c3.bands[0].title, "IPv4 ESTABLISHED, IPv6 IDLE");
        // A report long ago is not drawn to now.
        let long = Span {
            from: 0,
            to: 3_600_000,
        };
        let c2 = states(&[json!({"at": 0, "state": "ESTABLISHED"})], long);
        assert!(
            c2.bands[0].w < 30.0,
            "a minute of an hour: {}",
            c2.bands[0].w
        );
        mark(
            &mut c,
            &[
                json!({"at": 20_000, "kind": "SESSION_DOWN", "text": "hold timer expired"}),
                json!({"at": 99_000_000, "kind": "SESSION_UP"}),
            ],
            span,
        );
        assert_eq!(c.marks.len(), 1, "outside the span: not drawn");
        assert_eq!(c.marks[0].class, "session-down");
        assert!(c.marks[0].title.contains("hold timer expired"));
    }

    #[test]
    fn numbers_read_with_si_prefixes() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(1500.0), "1.50 k");
        assert_eq!(si(2e9), "2 G");
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(clock(3_723_000), "01:02");
    }
}
