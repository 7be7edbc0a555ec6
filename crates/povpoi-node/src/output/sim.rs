//! The `sim` output: the latest columns in memory, for the web UI and the tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use povpoi_core::model::Rgb;

use super::Output;

/// Columns kept: a little over a second at the highest frame rate.
pub const KEPT_COLUMNS: usize = 300;

/// The strip's recent columns, shared with whoever draws them.
#[derive(Clone, Debug, Default)]
pub struct SimStrip(Arc<Mutex<Frames>>);

/// Columns shown so far.
#[derive(Debug, Default)]
pub struct Frames {
    /// Columns shown since start (numbering for readers that poll).
    pub shown: u64,
    /// The latest columns, oldest first.
    pub recent: VecDeque<Vec<Rgb>>,
}

impl SimStrip {
    /// Columns numbered after `after` (at most [`KEPT_COLUMNS`]), and the number of the last.
    pub fn since(&self, after: u64) -> (Vec<Vec<Rgb>>, u64) {
        let frames = self.0.lock().expect("sim strip lock");
        let new = (frames.shown.saturating_sub(after) as usize).min(frames.recent.len());
        let start = frames.recent.len() - new;
        (frames.recent.iter().skip(start).cloned().collect(), frames.shown)
    }
}

impl Output for SimStrip {
    fn describe(&self) -> String {
        "sim".into()
    }

    fn column(&mut self, column: &[Rgb]) -> std::io::Result<()> {
        let mut frames = self.0.lock().expect("sim strip lock");
        if frames.recent.len() == KEPT_COLUMNS {
            frames.recent.pop_front();
        }
        frames.recent.push_back(column.to_vec());
        frames.shown += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_only_what_they_have_not_seen() {
        let strip = SimStrip::default();
        let mut out = strip.clone();
        for v in 0..5u8 {
            out.column(&[Rgb::new(v, 0, 0)]).unwrap();
        }
        let (cols, last) = strip.since(3);
        assert_eq!((cols.len(), last), (2, 5));
        assert_eq!(cols[0][0].r, 3);
        for _ in 0..KEPT_COLUMNS {
            out.column(&[Rgb::default()]).unwrap();
        }
        assert_eq!(strip.since(0).0.len(), KEPT_COLUMNS, "only the latest are kept");
    }
}
