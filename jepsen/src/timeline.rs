//! The timeline picture of a run (SVG): each operation a dot at its invocation time
//! and latency (log scale), coloured by outcome and shaped by kind, with fault windows
//! shaded — people would rather look than read.

use crate::history::{Event, EventType, Process};
use std::collections::HashMap;
use std::fmt::Write;

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Latency axis: 0.1 ms to 10 s, logarithmic.
const LATENCY_RANGE_MS: (f64, f64) = (0.1, 10_000.0);

/// The picture of `events`.
pub fn svg(events: &[Event]) -> String {
    let end = events.iter().map(|e| e.time).max().unwrap_or(1).max(1) as f64;
    let x = |time: u64| LEFT + (time as f64 / end) * (WIDTH - LEFT - RIGHT);
    let (low, high) = (LATENCY_RANGE_MS.0.log10(), LATENCY_RANGE_MS.1.log10());
    let y = |ms: f64| {
        let clamped = ms.clamp(LATENCY_RANGE_MS.0, LATENCY_RANGE_MS.1).log10();
        TOP + (1.0 - (clamped - low) / (high - low)) * (HEIGHT - TOP - BOTTOM)
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (start, stop, label) in fault_windows(events) {
        let stop = stop.unwrap_or(end as u64);
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f4c7c3\" opacity=\"0.6\"><title>{label}</title></rect>",
            x(start),
            (x(stop) - x(start)).max(1.0),
            HEIGHT - TOP - BOTTOM
        );
    }
    axes(&mut out, end, &y);
    let mut open: HashMap<u64, &Event> = HashMap::new();
    for event in events {
        let Process::Client(process) = event.process else {
            continue;
        };
        if event.kind == EventType::Invoke {
            open.insert(process, event);
            continue;
        }
        let Some(invoke) = open.remove(&process) else {
            continue;
        };
        let latency_ms = (event.time.saturating_sub(invoke.time)) as f64 / 1e6;
        let colour = match event.kind {
            EventType::Ok => "#1a7f37",
            EventType::Fail => "#cf222e",
            _ => "#bf8700",
        };
        let (cx, cy) = (x(invoke.time), y(latency_ms));
        let title = format!(
            "{} {} → {:?} in {latency_ms:.2} ms",
            invoke.f, invoke.value, event.kind
        );
        let _ = match invoke.f.as_str() {
            "read" => writeln!(
                out,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"2\" fill=\"{colour}\"><title>{title}</title></circle>"
            ),
            _ => writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"4\" height=\"4\" fill=\"{colour}\"><title>{title}</title></rect>",
                cx - 2.0,
                cy - 2.0
            ),
        };
    }
    legend(&mut out);
    out.push_str("</svg>\n");
    out
}

/// Time windows of faults, from the nemesis's start and stop events.
fn fault_windows(events: &[Event]) -> Vec<(u64, Option<u64>, String)> {
    let mut windows: Vec<(u64, Option<u64>, String)> = Vec::new();
    for event in events {
        if matches!(event.process, Process::Client(_)) {
            continue;
        }
        match event.f.as_str() {
            "start-partition" | "kill" | "pause" | "skew-clock" | "remove-node" => {
                windows.push((event.time, None, format!("{} {}", event.f, event.value)))
            }
            "stop-partition" | "restart" | "resume" | "reset-clock" | "rejoin" | "heal" => {
                if let Some(open) = windows.iter_mut().rev().find(|w| w.1.is_none()) {
                    open.1 = Some(event.time);
                }
            }
            _ => {}
        }
    }
    windows
}

fn axes(out: &mut String, end: f64, y: &dyn Fn(f64) -> f64) {
    let bottom = HEIGHT - BOTTOM;
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>",
        WIDTH - RIGHT
    );
    for ms in [0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0] {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{ms} ms</text>",
            LEFT - 6.0,
            y(ms) + 4.0
        );
    }
    let seconds = end / 1e9;
    let step = (seconds / 10.0).max(1.0).ceil();
    let mut tick = 0.0;
    while tick <= seconds {
        let px = LEFT + (tick / seconds.max(1e-9)) * (WIDTH - LEFT - RIGHT);
        let _ = writeln!(
            out,
            "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{tick} s</text>",
            bottom + 18.0
        );
        tick += step;
    }
}

fn legend(out: &mut String) {
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"20\">operation latency by invocation time — \
         <tspan fill=\"#1a7f37\">ok</tspan>, <tspan fill=\"#cf222e\">fail</tspan>, \
         <tspan fill=\"#bf8700\">info (unknown)</tspan>; dots: reads, squares: writes; \
         shaded: faults</text>"
    );
}
