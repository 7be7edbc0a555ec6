//! The player: what the library says should play, turned into columns on the outputs, frame
//! by frame, on a thread of its own (an SPI or serial write may block; frame timing should
//! not depend on the async runtime's load).
//!
//! Show time is the system clock in ms since the epoch for now, so two poi with synchronised
//! clocks already show the same column of an image or pattern at the same instant; a sequence
//! starts at the stamp of the edit that selected it, which both poi share.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use povpoi_core::model::{
    ImageId, Mode, PATTERN_SLOTS, Pattern, Rgb, SEQUENCE_SLOTS, Sequence, SequenceTarget, Settings,
};
use povpoi_core::render::{AudioSource, Constant, Content, Finish, ImageView, Program, Renderer, Silence, TestSignal};
use povpoi_core::sync::Key;

use crate::config::PowerMode;
use crate::library::now_ms;
use crate::node::NodeState;
use crate::output::{Output, Show, ShowImage};

/// Where the audio-reactive patterns get their level (`--audio`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudioChoice {
    /// No microphone: level 0.
    #[default]
    None,
    /// A fixed level.
    Constant(u8),
    /// A 120 bpm beat, for trying the audio patterns.
    Test,
}

impl FromStr for AudioChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(AudioChoice::None),
            "test" => Ok(AudioChoice::Test),
            other => match other.strip_prefix("constant:").map(str::parse::<u8>) {
                Some(Ok(level)) => Ok(AudioChoice::Constant(level)),
                _ => Err(format!("audio must be none, test or constant:LEVEL (0-255), not {other:?}")),
            },
        }
    }
}

impl AudioChoice {
    fn source(self) -> Box<dyn AudioSource + Send> {
        match self {
            AudioChoice::None => Box::new(Silence),
            AudioChoice::Constant(level) => Box::new(Constant(level)),
            AudioChoice::Test => Box::new(TestSignal),
        }
    }
}

/// How often the player looks again for pixels that have not arrived yet.
const PIXEL_RETRY_MS: u64 = 250;

/// Show time now, ms.
pub fn show_now_ms() -> u64 {
    now_ms()
}

/// `settings` with brightness and frame rate as the strip plays them under `power`'s caps;
/// the node's previews go through this too, so they show what the strip shows.
pub fn power_capped(settings: Settings, power: PowerMode) -> Settings {
    Settings {
        brightness: settings.brightness.min(power.brightness_cap()),
        framerate: settings.framerate.clamp(1, power.fps_limit()),
        ..settings
    }
}

/// The finish a column of `mode` gets: gamma for what the renderer draws, none for a live
/// column, which spec section 3 shows as pushed (the sender chose its values for the LEDs).
pub fn finish_for(mode: Mode, brightness: u8) -> Finish {
    Finish { brightness, gamma: mode != Mode::Live }
}

/// Everything the frame loop needs between library changes.
#[derive(Default)]
struct Playing {
    show: Show,
    /// Show time at which the selected sequence began.
    sequence_start: u64,
    /// Pixels of the images the selection shows.
    images: HashMap<ImageId, ShowImage>,
    /// The image of image mode.
    image_id: Option<ImageId>,
    /// Some pixels the selection needs have not arrived yet.
    incomplete: bool,
}

impl Content for Playing {
    fn image(&self, id: ImageId) -> Option<ImageView<'_>> {
        self.images.get(&id).map(|i| ImageView { width: i.width, height: i.height, pixels: &i.pixels })
    }

    fn pattern(&self, slot: u8) -> Option<Pattern> {
        self.show.patterns.get(usize::from(slot)).copied().flatten()
    }
}

impl Playing {
    /// Reads what plays from the library (and the pixels it needs from disk).
    fn load(state: &NodeState) -> Playing {
        let power = state.config().power_mode;
        let (settings, patterns, sequences, started, image_ids) = state.library.read(|poi| {
            let patterns: Vec<Option<Pattern>> = (0..PATTERN_SLOTS).map(|s| poi.pattern(s).copied()).collect();
            let sequences: Vec<Option<Sequence>> = (0..SEQUENCE_SLOTS).map(|s| poi.sequence(s).cloned()).collect();
            let started = poi.visible(&Key::Selection).map_or(0, |r| r.stamp.millis);
            let ids: Vec<ImageId> = poi.images().map(|(id, _)| id).collect();
            (power_capped(poi.settings(), power), patterns, sequences, started, ids)
        });
        let selection = settings.selection;
        let mut wanted = Vec::new();
        let mut image_id = None;
        match selection.mode {
            Mode::Image => {
                image_id = image_ids.get(usize::from(selection.index)).copied();
                wanted.extend(image_id);
            }
            Mode::Sequence => {
                if let Some(Some(sequence)) = sequences.get(usize::from(selection.index)) {
                    for item in sequence.items() {
                        if let SequenceTarget::Image(id) = item.target {
                            wanted.push(id);
                        }
                    }
                }
            }
            _ => {}
        }
        let mut images = HashMap::new();
        for &id in &wanted {
            if let Some(image) = state.library.image_for_display(id) {
                images.insert(id, image);
            }
        }
        // Pixels arrive after the records that name them (and a blob arriving does not
        // change the library digest): look again until all are here.
        let incomplete = wanted.iter().any(|id| !images.contains_key(id));
        let show = Show {
            mode: selection.mode,
            index: selection.index,
            brightness: settings.brightness,
            framerate: settings.framerate,
            patterns,
            sequences,
            // The image of image mode, else the sequence's first image that is here (the
            // Teensy holds one image); in item order, so every load picks the same one.
            image: image_id
                .or_else(|| wanted.iter().copied().find(|id| images.contains_key(id)))
                .and_then(|id| images.get(&id).cloned()),
            live: None,
        };
        Playing { show, sequence_start: started, images, image_id, incomplete }
    }

    fn program<'a>(&'a self, live: &'a [Rgb]) -> Program<'a> {
        let index = self.show.index;
        match self.show.mode {
            Mode::Idle => Program::Idle,
            Mode::Image => match self.image_id.and_then(|id| self.image(id)) {
                Some(view) => Program::Image(view),
                None => Program::Idle,
            },
            Mode::Pattern => match index.try_into().ok().and_then(|slot| self.pattern(slot)) {
                Some(p) => Program::Pattern(p),
                None => Program::Idle,
            },
            Mode::Sequence => match self.show.sequences.get(usize::from(index)) {
                Some(Some(sequence)) => Program::Sequence { sequence, started_ms: self.sequence_start, content: self },
                _ => Program::Idle,
            },
            Mode::Live => Program::Live(live),
        }
    }
}

/// The running frame loop.
pub struct Player {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Counters the frame loop keeps, for `/api/status` and benchmarks.
#[derive(Debug, Default)]
pub struct PlayerStats {
    /// Columns rendered and handed to the column outputs.
    pub columns: AtomicU64,
    /// Writes an output refused.
    pub output_errors: AtomicU64,
}

impl Player {
    /// Starts playing on `outputs`, with a strip of `leds` LEDs.
    pub fn start(
        state: Arc<NodeState>,
        outputs: Vec<Box<dyn Output>>,
        renderer: Renderer,
        audio: AudioChoice,
    ) -> Player {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("povpoi-player".into())
            .spawn(move || run(&state, outputs, renderer, audio.source(), &flag))
            .expect("cannot start the player thread");
        Player { stop, thread: Some(thread) }
    }

    /// Stops the loop and waits for it (the last column written stays on the strip).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(
    state: &NodeState,
    mut outputs: Vec<Box<dyn Output>>,
    renderer: Renderer,
    mut audio: Box<dyn AudioSource + Send>,
    stop: &AtomicBool,
) {
    let mut changes = state.library.changes();
    let mut power = state.config().power_mode;
    let mut playing = Playing::load(state);
    let mut live = Vec::new();
    let mut sent: Option<Show> = None;
    let mut column = vec![Rgb::default(); renderer.leds()];
    let wants_columns = outputs.iter().any(|o| o.wants_columns());
    let mut loaded_at = show_now_ms();
    let mut retry_outputs_at = 0;
    while !stop.load(Ordering::Relaxed) {
        let power_now = state.config().power_mode;
        let waiting_for_pixels = playing.incomplete && show_now_ms().abs_diff(loaded_at) >= PIXEL_RETRY_MS;
        if changes.has_changed().unwrap_or(false) || power_now != power || waiting_for_pixels {
            changes.borrow_and_update();
            power = power_now;
            playing = Playing::load(state);
            loaded_at = show_now_ms();
        }
        if playing.show.mode == Mode::Live {
            let pushed = state.live.lock().unwrap_or_else(|p| p.into_inner());
            if *pushed != live {
                live.clone_from(&pushed);
            }
        }
        playing.show.live = (playing.show.mode == Mode::Live).then(|| live.clone());
        if sent.as_ref() != Some(&playing.show) && show_now_ms() >= retry_outputs_at {
            let mut all_took_it = true;
            for output in &mut outputs {
                if let Err(e) = output.show_changed(&playing.show) {
                    note_error(state, output.as_ref(), &e);
                    all_took_it = false;
                }
            }
            // A board that failed half-way (unplugged, rebooting) is sent the show again
            // a second later rather than left with part of it.
            if all_took_it {
                sent = Some(playing.show.clone());
            } else {
                sent = None;
                retry_outputs_at = show_now_ms() + 1_000;
            }
        }

        let now = show_now_ms();
        let fps = u64::from(playing.show.framerate.max(1));
        if wants_columns {
            let level = audio.level(now);
            renderer.render(&playing.program(&live), now, playing.show.framerate, level, &mut column);
            finish_for(playing.show.mode, playing.show.brightness).apply(&mut column);
            for output in outputs.iter_mut().filter(|o| o.wants_columns()) {
                if let Err(e) = output.column(&column) {
                    note_error(state, output.as_ref(), &e);
                }
            }
            state.player_stats.columns.fetch_add(1, Ordering::Relaxed);
            // Sleep to the start of the next column: frame k begins at k * 1000 / fps ms.
            let next_frame = now * fps / 1000 + 1;
            let next_ms = (next_frame * 1000).div_ceil(fps);
            nap_until(next_ms.min(now + 1000 / fps + 1), stop);
        } else {
            nap_until(now + 20, stop);
        }
    }
}

/// Sleeps until show time `deadline_ms` (at most one frame away, so a clock stepped back by
/// NTP cannot freeze the loop), looking at `stop` at least every 50 ms (at 1 fps a frame
/// lasts a second; stopping should not).
fn nap_until(deadline_ms: u64, stop: &AtomicBool) {
    let started = std::time::Instant::now();
    // One ms of slack: the show clock reads whole ms, so the wall-clock wait can be up to one
    // ms longer than the difference says.
    let longest = Duration::from_millis(deadline_ms.saturating_sub(show_now_ms()).min(1_000) + 1);
    loop {
        let monotonic_left = longest.saturating_sub(started.elapsed()).as_micros().div_ceil(1000) as u64;
        let left = deadline_ms.saturating_sub(show_now_ms()).min(monotonic_left);
        if left == 0 || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(left.min(50)));
    }
}

fn note_error(state: &NodeState, output: &dyn Output, e: &std::io::Error) {
    let count = state.player_stats.output_errors.fetch_add(1, Ordering::Relaxed);
    // A strip unplugged mid-show fails every frame: log the first and then every 1,000th.
    if count.is_multiple_of(1000) {
        tracing::warn!(output = %output.describe(), error = %e, failures = count + 1, "output failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use povpoi_core::render::gamma;

    #[test]
    fn audio_choices_parse() {
        assert_eq!("none".parse(), Ok(AudioChoice::None));
        assert_eq!("test".parse(), Ok(AudioChoice::Test));
        assert_eq!("constant:200".parse(), Ok(AudioChoice::Constant(200)));
        assert!("constant:300".parse::<AudioChoice>().is_err());
        assert!("mic".parse::<AudioChoice>().is_err());
    }

    #[test]
    fn live_columns_get_brightness_but_no_gamma() {
        let pushed = [Rgb::new(128, 64, 200), Rgb::new(1, 254, 30)];
        let mut column = pushed;
        finish_for(Mode::Live, 255).apply(&mut column);
        assert_eq!(column, pushed, "shown as is");
        let mut column = pushed;
        finish_for(Mode::Live, 80).apply(&mut column);
        assert_eq!(column, [Rgb::new(40, 20, 63), Rgb::new(0, 80, 9)], "brightness still applies");
        for mode in [Mode::Idle, Mode::Image, Mode::Pattern, Mode::Sequence] {
            let mut column = pushed;
            finish_for(mode, 255).apply(&mut column);
            let corrected = Rgb::new(gamma(128), gamma(64), gamma(200));
            assert!(corrected != pushed[0] && column[0] == corrected, "{mode:?} is gamma corrected");
        }
    }

    #[test]
    fn the_power_profile_caps_brightness_and_frame_rate() {
        let asked = Settings { brightness: 200, framerate: 255, ..Settings::default() };
        let capped = |power| {
            let s = power_capped(asked, power);
            (s.brightness, s.framerate)
        };
        assert_eq!(capped(PowerMode::Performance), (200, 120));
        assert_eq!(capped(PowerMode::Balanced), (200, 60));
        assert_eq!(capped(PowerMode::Powersave), (150, 30));
        assert_eq!(capped(PowerMode::Ultrasave), (80, 15));
        let slow = Settings { framerate: 10, ..asked };
        assert_eq!(power_capped(slow, PowerMode::Ultrasave).framerate, 10);
        assert_eq!(power_capped(slow, PowerMode::Ultrasave).selection, asked.selection);
    }
}
