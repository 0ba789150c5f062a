//! `tracer top`: a live full-screen view refreshed every second — sockets and transition rates
//! per state, the services and processes holding TIME_WAIT and CLOSE_WAIT, who closes first,
//! lost events. `q` (or Esc, Ctrl-C) quits and restores the terminal. When stdout is not a
//! terminal it prints the same view as plain-text snapshots.
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use ratatui::{
    DefaultTerminal,
    crossterm::event::{self, Event as TermEvent, KeyCode, KeyModifiers},
    widgets::Paragraph,
};

use crate::engine::{Collector, Sink};
use crate::{
    commands::options::TopArgs,
    model::Step,
    service::doctor::live::{self, LiveForecasts},
    stats::closes::CloseStats,
    time::duration::human,
    view::top::{Rates, render},
};

struct TopSink {
    closes: CloseStats,
    rates: Rates,
    forecasts: LiveForecasts,
    terminal: Option<DefaultTerminal>,
}

impl Sink for TopSink {
    fn step(&mut self, step: &Step) -> Result<()> {
        self.closes.record(step);
        self.rates.record(step);
        self.forecasts.record(step);
        Ok(())
    }

    fn tick(&mut self, collector: &Collector) -> Result<()> {
        self.forecasts.tick(collector.now_ns());
        let latest = self.forecasts.latest();
        let runs_out = match latest.measured_ns {
            0 => vec![format!(
                "measuring (the first forecast after {})",
                human(live::WINDOW.as_nanos() as u64)
            )],
            _ => latest.lines(),
        };
        let text = render(collector, &self.closes, &mut self.rates, &runs_out);
        match self.terminal.as_mut() {
            Some(terminal) => {
                terminal
                    .draw(|frame| frame.render_widget(Paragraph::new(text.as_str()), frame.area()))
                    .context("drawing the screen")?;
            }
            None => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// Reads keys on its own thread; a quit key stops the collector the way Ctrl-C does.
fn watch_keys() {
    std::thread::spawn(|| {
        loop {
            let Ok(TermEvent::Key(key)) = event::read() else {
                continue;
            };
            let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers == KeyModifiers::CONTROL;
            if matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                // SAFETY: raise(2) on our own process; the collector handles SIGINT.
                unsafe { libc::raise(libc::SIGINT) };
                return;
            }
        }
    });
}

pub async fn run(args: TopArgs) -> Result<()> {
    let mut collector = Collector::attach(&args.filter.to_config()?)?;
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let mut sink = TopSink {
        closes: CloseStats::default(),
        rates: Rates::default(),
        forecasts: LiveForecasts::start(live::WINDOW),
        terminal: None,
    };
    if interactive {
        sink.terminal = Some(ratatui::init());
        watch_keys();
    } else {
        log::info!("tracer top: stdout is not a terminal, printing snapshots; Ctrl-C to stop");
    }
    let result = collector.run(args.duration, args.interval, &mut sink).await;
    if sink.terminal.take().is_some() {
        ratatui::restore();
    }
    result.map(|_| ())
}
