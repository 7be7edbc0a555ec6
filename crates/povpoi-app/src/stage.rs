//! What plays, field by field, and from which cue: the library's wish ([`Wanted`]) and the
//! fields switching at their cues on show time ([`Stage`]). A node's player and a board's
//! column clock both play from a stage, so a pair switches on the same column.

use alloc::vec;
use alloc::vec::Vec;

use povpoi_core::model::{PATTERN_SLOTS, Pattern, SEQUENCE_SLOTS, Selection, Sequence};
use povpoi_core::show::{Cue, Staged};
use povpoi_core::sync::{Key, Replica, Storage};

/// What the library says should play, each field with the cue of the edit that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Brightness and its cue.
    pub brightness: (u8, Cue),
    /// Frame rate and its cue.
    pub framerate: (u16, Cue),
    /// What plays and its cue.
    pub selection: (Selection, Cue),
    /// Each pattern slot and its cue.
    pub patterns: Vec<(Option<Pattern>, Cue)>,
    /// Each sequence slot and its cue.
    pub sequences: Vec<(Option<Sequence>, Cue)>,
}

impl Wanted {
    /// Reads what `replica` wants played.
    pub fn read<S: Storage>(replica: &Replica<S>) -> Wanted {
        let cue = |key: Key| replica.visible(&key).map_or(Cue::NOW, |r| r.cue);
        let settings = replica.settings();
        Wanted {
            brightness: (settings.brightness, cue(Key::Brightness)),
            framerate: (settings.framerate, cue(Key::Framerate)),
            selection: (settings.selection, cue(Key::Selection)),
            patterns: (0..PATTERN_SLOTS).map(|s| (replica.pattern(s).copied(), cue(Key::Pattern(s)))).collect(),
            sequences: (0..SEQUENCE_SLOTS).map(|s| (replica.sequence(s).cloned(), cue(Key::Sequence(s)))).collect(),
        }
    }
}

/// Each field of what plays, switching at its cues. The selection is staged with its cue,
/// so selecting the same sequence again restarts it.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Brightness showing and waiting.
    pub brightness: Staged<u8>,
    /// Frame rate showing and waiting.
    pub framerate: Staged<u16>,
    /// Selection (with the cue it was set at) showing and waiting.
    pub selection: Staged<(Selection, Cue)>,
    /// Pattern slots showing and waiting.
    pub patterns: Vec<Staged<Option<Pattern>>>,
    /// Sequence slots showing and waiting.
    pub sequences: Vec<Staged<Option<Sequence>>>,
}

impl Stage {
    /// Everything as wanted, shown at once (a player starting up has nothing to wait for).
    pub fn new(w: &Wanted) -> Stage {
        Stage {
            brightness: Staged::new(w.brightness.0, w.brightness.1),
            framerate: Staged::new(w.framerate.0, w.framerate.1),
            selection: Staged::new(w.selection, w.selection.1),
            patterns: w.patterns.iter().map(|(p, c)| Staged::new(*p, *c)).collect(),
            sequences: w.sequences.iter().map(|(q, c)| Staged::new(q.clone(), *c)).collect(),
        }
    }

    /// Cues every field that changed; returns whether what shows changed already.
    pub fn set(&mut self, w: &Wanted, show_us: u64) -> bool {
        let mut changed = self.brightness.set(w.brightness.0, w.brightness.1, show_us);
        changed |= self.framerate.set(w.framerate.0, w.framerate.1, show_us);
        changed |= self.selection.set(w.selection, w.selection.1, show_us);
        for (staged, (p, cue)) in self.patterns.iter_mut().zip(&w.patterns) {
            changed |= staged.set(*p, *cue, show_us);
        }
        for (staged, (q, cue)) in self.sequences.iter_mut().zip(&w.sequences) {
            changed |= staged.set(q.clone(), *cue, show_us);
        }
        changed
    }

    /// Lets the fields whose cue has come take effect; returns whether what shows changed.
    pub fn advance(&mut self, show_us: u64) -> bool {
        let mut changed = self.brightness.advance(show_us);
        changed |= self.framerate.advance(show_us);
        changed |= self.selection.advance(show_us);
        for staged in &mut self.patterns {
            changed |= staged.advance(show_us);
        }
        for staged in &mut self.sequences {
            changed |= staged.advance(show_us);
        }
        changed
    }

    /// The earliest cue still waiting, if any.
    pub fn next_cue(&self) -> Option<Cue> {
        let mut cues = vec![self.brightness.next_cue(), self.framerate.next_cue(), self.selection.next_cue()];
        cues.extend(self.patterns.iter().map(Staged::next_cue));
        cues.extend(self.sequences.iter().map(Staged::next_cue));
        cues.into_iter().flatten().min()
    }

    /// The latest cue among the values showing (what a switch just now was cued at).
    pub fn latest_cue(&self) -> Cue {
        let mut cues = vec![self.brightness.since(), self.framerate.since(), self.selection.since()];
        cues.extend(self.patterns.iter().map(Staged::since));
        cues.extend(self.sequences.iter().map(Staged::since));
        cues.into_iter().max().unwrap_or(Cue::NOW)
    }

    /// What a column shows now without images or sequences at hand: a pattern slot's pattern,
    /// or dark (a board that has not loaded pixels yet shows this).
    pub fn pattern_program(&self) -> povpoi_core::render::Program<'static> {
        use povpoi_core::model::Mode;
        use povpoi_core::render::Program;
        let selection = self.selection.current().0;
        let slot = u8::try_from(selection.index).ok().map(usize::from);
        match (selection.mode, slot.and_then(|s| self.patterns.get(s))) {
            (Mode::Pattern, Some(staged)) => staged.current().map_or(Program::Idle, Program::Pattern),
            _ => Program::Idle,
        }
    }

    /// The selections showing and waiting: the images they need must be at hand.
    pub fn selections(&self) -> Vec<Selection> {
        vec![self.selection.current().0, self.selection.latest().0]
    }
}

/// Show time at which the column playing at `now` began, at `framerate` columns a second:
/// column `k` starts at show time `k / framerate` s on every poi.
pub fn column_start(now: u64, framerate: u16) -> u64 {
    let fps = u64::from(framerate.max(1));
    start_of(columns_before(now, fps), fps)
}

/// Show time (ms) a column playing at `now` is drawn as: its middle, so every poi draws the
/// same column whatever the ms rounding of its renderer's clock.
pub fn column_middle_ms(now: u64, framerate: u16) -> u64 {
    let fps = u64::from(framerate.max(1));
    (2 * columns_before(now, fps) + 1) * 500 / fps
}

/// Show time at which the column after the one playing at `now` begins.
pub fn next_column_start(now: u64, framerate: u16) -> u64 {
    let fps = u64::from(framerate.max(1));
    start_of(columns_before(now, fps) + 1, fps)
}

// Both below without 128-bit numbers, which a 32-bit core divides in a library routine
// (2.4 KB of a board's flash, and slow at every column): with now = 10^6 q + r, the
// columns begun are q fps + r fps / 10^6, and no product passes 2^64.

/// Columns begun at show time `now`: `now * fps / 10^6`, rounded down.
fn columns_before(now: u64, fps: u64) -> u64 {
    now / 1_000_000 * fps + now % 1_000_000 * fps / 1_000_000
}

/// Show time column `k` starts at: `k * 10^6 / fps`, rounded up.
fn start_of(k: u64, fps: u64) -> u64 {
    k / fps * 1_000_000 + (k % fps * 1_000_000).div_ceil(fps)
}

/// Show time (ms) at which a sequence selected with `cue` began, at show time `now_us`: its
/// cue, so every poi of the timeline is at the same item. A cue "now" (an edit of the
/// protocol before cues) or one not reached yet (set on a timeline this poi has not joined,
/// or before the whole troupe restarted) counts as show time 0, which every poi of a
/// timeline shares too. Asked each column: once a poi steps onto its group's timeline, the
/// cue is behind it and the phase follows the cue.
pub fn sequence_start(cue: Cue, now_us: u64) -> u64 {
    if cue != Cue::NOW && cue.0 <= now_us { cue.0 / 1_000 } else { 0 }
}

/// A switch that took effect at its cue: the show time and host time of its first column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CueShown {
    /// The cue, µs of show time.
    pub cue_us: u64,
    /// Show time at which the first column showing it began, µs.
    pub show_us: u64,
    /// Host real-time clock when that column went to the outputs, µs since the epoch.
    pub host_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use povpoi_core::device::{DeviceId, ReplicaId};
    use povpoi_core::sync::{Identity, MemoryStorage};

    #[test]
    fn a_change_waits_for_its_cue_then_shows() {
        let id = Identity { replica: ReplicaId(1), device: DeviceId([2, 0, 0, 0, 0, 1]), group: "g".into() };
        let mut replica = Replica::open(MemoryStorage::default(), id).unwrap();
        let mut stage = Stage::new(&Wanted::read(&replica));
        replica.set_brightness(40, 1_000, Cue(5_000_000)).unwrap();
        assert!(!stage.set(&Wanted::read(&replica), 4_000_000), "not before its cue");
        assert_eq!(*stage.brightness.current(), 128);
        assert_eq!(stage.next_cue(), Some(Cue(5_000_000)));
        assert!(!stage.advance(4_999_999));
        assert!(stage.advance(5_000_000));
        assert_eq!((*stage.brightness.current(), stage.latest_cue()), (40, Cue(5_000_000)));
        assert_eq!(stage.next_cue(), None);
    }

    #[test]
    fn column_starts_are_the_wide_arithmetics() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(5);
        for i in 0..200_000u32 {
            let fps = if i % 2 == 0 { rng.random_range(1..=255) } else { rng.random() };
            // Any show time up to a thousand years, and some near column boundaries.
            let now = match i % 3 {
                0 => rng.random_range(0..31_536_000_000_000_000),
                1 => rng.random_range(0..10_000_000),
                _ => (u64::from(rng.random::<u32>()) * 1_000_000).div_ceil(u64::from(fps.max(1))),
            };
            let wide = u128::from(fps.max(1));
            let k = u128::from(now) * wide / 1_000_000;
            let start = (k * 1_000_000).div_ceil(wide) as u64;
            let next = ((k + 1) * 1_000_000).div_ceil(wide) as u64;
            assert_eq!((column_start(now, fps), next_column_start(now, fps)), (start, next), "{now} µs at {fps}");
            let middle = ((2 * k + 1) * 500 / wide) as u64;
            assert_eq!(column_middle_ms(now, fps), middle, "{now} µs at {fps}");
        }
    }

    #[test]
    fn columns_start_at_whole_multiples_of_the_column_time() {
        assert_eq!((column_start(0, 90), next_column_start(0, 90)), (0, 11_112));
        assert_eq!((column_start(11_112, 90), next_column_start(11_112, 90)), (11_112, 22_223));
        assert_eq!((column_start(11_111, 90), next_column_start(11_111, 90)), (0, 11_112));
        assert_eq!(column_start(1_999_999, 0), 1_000_000, "0 fps counts as 1");
    }
}
