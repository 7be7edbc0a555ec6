//! The player: what the library says should play, turned into columns on the outputs, frame
//! by frame, on a thread of its own (an SPI or serial write may block; frame timing should
//! not depend on the async runtime's load).
//!
//! Everything runs on show time, the group's shared clock ([`crate::show_clock`]): column
//! `k` of a frame rate `f` starts at show time `k / f` s on every poi, and each change of
//! what plays waits for its cue (the show time its edit carries), so a pair switches on the
//! same column. A change heard of after its cue shows at once, at the phase it would have
//! had: a sequence runs from its cue, images and patterns from show time.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use povpoi_core::model::Selection;
use povpoi_core::model::{ImageId, Mode, Pattern, Rgb, SequenceTarget, Settings};
use povpoi_core::render::{
    AudioSource, ColorOrder, ColumnCache, Constant, Content, Finish, ImageView, Program, Renderer, Silence, TestSignal,
};
use povpoi_core::show::Cue;

pub use povpoi_app::stage::CueShown;
use povpoi_app::stage::{Stage, Wanted, column_start, sequence_start};
use povpoi_app::teensy::image_for_teensy;

use crate::config::PowerMode;
use crate::library::{Library, Poi};
use crate::output::{Output, Show, ShowImage};
use crate::show_clock::{ShowTime, host_time_us};

/// The parts of a poi the player reads and reports to; the node hands over its state.
pub trait PlayerParts: Send + Sync + 'static {
    /// The replicated library: what plays, and the pixels.
    fn library(&self) -> &Library;
    /// The show clock columns are timed by.
    fn show(&self) -> &ShowTime;
    /// The strip's settings now.
    fn strip(&self) -> StripSettings;
    /// The column pushed for live mode.
    fn live(&self) -> &Mutex<Vec<Rgb>>;
    /// The identify flash.
    fn identify(&self) -> &Identify;
    /// The counters the player keeps.
    fn stats(&self) -> &PlayerStats;
}

/// The strip's settings, read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripSettings {
    /// The power profile, which may cap brightness and frame rate.
    pub power: PowerMode,
    /// LEDs per column.
    pub leds: u16,
    /// The order the strip takes colours in.
    pub order: ColorOrder,
}

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

/// Level of each channel of the identify flash: a quarter of full white, plainly visible
/// across a room without the current of a whole strip at full white.
pub const IDENTIFY_LEVEL: u8 = 64;
/// The identify flash is lit for this long, then dark for as long: four flashes a second.
pub const IDENTIFY_HALF_PERIOD: Duration = Duration::from_millis(125);

/// `POST /api/identify`: the strip flashes over whatever plays until a deadline, so a
/// performer can tell which poi of a troupe a card in the web UI is.
#[derive(Debug, Default)]
pub struct Identify(Mutex<Option<(Instant, Instant)>>);

impl Identify {
    /// Flashes from now for `length` (a new call starts over).
    pub fn start(&self, length: Duration) {
        let now = Instant::now();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, now + length));
    }

    /// Some(lit) while flashing (whether the flash is lit at `now`), None otherwise.
    pub fn phase(&self, now: Instant) -> Option<bool> {
        let mut flashing = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (started, until) = (*flashing)?;
        if now >= until {
            *flashing = None;
            return None;
        }
        let half = IDENTIFY_HALF_PERIOD.as_nanos().max(1);
        Some((now.saturating_duration_since(started).as_nanos() / half).is_multiple_of(2))
    }
}

/// The images in library order (image mode selects by position).
fn image_ids(replica: &Poi) -> Vec<ImageId> {
    replica.images().map(|(id, _)| id).collect()
}

/// The column of the identify flash, lit or dark.
fn identify_column(column: &mut [Rgb], lit: bool) {
    let level = if lit { IDENTIFY_LEVEL } else { 0 };
    column.fill(Rgb::new(level, level, level));
}

/// What a mirroring output (the Teensy, which renders itself) is sent while flashing: the
/// flash as a live column at full brightness, so the board's own brightness setting cannot
/// hide it; the show is sent again once the flash is over.
fn identify_show(show: &Show, lit: bool) -> Show {
    let mut column = vec![Rgb::default(); usize::from(povpoi_core::render::DEFAULT_LEDS)];
    identify_column(&mut column, lit);
    Show { mode: Mode::Live, brightness: 255, live: Some(column), ..show.clone() }
}

/// How often the player looks again for pixels that have not arrived yet, µs of show time.
const PIXEL_RETRY_US: u64 = 250_000;
/// Longest the loop sleeps without looking at the library, the stop flag and the cues.
const LONGEST_NAP_US: u64 = 20_000;

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
struct Playing {
    stage: Stage,
    power: PowerMode,
    /// Images in library order, at the last read (image mode selects by position).
    image_ids: Vec<ImageId>,
    /// Pixels of the images the selections showing and waiting need.
    images: HashMap<ImageId, ShowImage>,
    /// Some pixels those selections need have not arrived yet.
    incomplete: bool,
    /// What plays now, as the mirroring outputs get it.
    show: Show,
    /// The cue of the selection showing.
    selection_cue: Cue,
    /// The image of image mode.
    image_id: Option<ImageId>,
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
    fn new(state: &impl PlayerParts) -> Playing {
        let (wanted, image_ids) = state.library().read(|r| (Wanted::read(r), image_ids(r)));
        let mut playing = Playing {
            stage: Stage::new(&wanted),
            power: state.strip().power,
            image_ids,
            images: HashMap::new(),
            incomplete: false,
            show: Show::default(),
            selection_cue: Cue::NOW,
            image_id: None,
        };
        playing.load_images(state);
        playing.refresh();
        playing
    }

    /// Takes in a change of the library or of the power mode; returns whether a cued field
    /// changed what shows already (its cue has passed).
    fn reload(&mut self, state: &impl PlayerParts, show_us: u64) -> bool {
        let (wanted, image_ids) = state.library().read(|r| (Wanted::read(r), image_ids(r)));
        self.power = state.strip().power;
        self.image_ids = image_ids;
        let changed = self.stage.set(&wanted, show_us);
        self.load_images(state);
        self.refresh();
        changed
    }

    /// The images a selection shows, with the sequence's version showing or the one waiting.
    fn images_of(&self, selection: Selection, waiting: bool) -> Vec<ImageId> {
        match selection.mode {
            Mode::Image => self.image_ids.get(usize::from(selection.index)).copied().into_iter().collect(),
            Mode::Sequence => {
                let staged = self.stage.sequences.get(usize::from(selection.index));
                match staged.map(|q| if waiting { q.latest() } else { q.current() }) {
                    Some(Some(sequence)) => sequence
                        .items()
                        .iter()
                        .filter_map(|i| match i.target {
                            SequenceTarget::Image(id) => Some(id),
                            SequenceTarget::Pattern(_) => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// Reads the pixels the selections showing and waiting need (blocking: disk).
    fn load_images(&mut self, state: &impl PlayerParts) {
        let wanted: Vec<ImageId> = self
            .stage
            .selections()
            .into_iter()
            .flat_map(|s| [self.images_of(s, false), self.images_of(s, true)])
            .flatten()
            .collect();
        self.images.retain(|id, _| wanted.contains(id));
        for &id in &wanted {
            if !self.images.contains_key(&id)
                && let Some(image) = state.library().image_for_display(id)
            {
                self.images.insert(id, image);
            }
        }
        // Pixels arrive after the records that name them (and a blob arriving does not
        // change the library digest): look again until all are here.
        self.incomplete = wanted.iter().any(|id| !self.images.contains_key(id));
    }

    /// Lets due cues take effect; returns whether what shows changed.
    fn advance(&mut self, show_us: u64) -> bool {
        let changed = self.stage.advance(show_us);
        if changed {
            self.refresh();
        }
        changed
    }

    /// Rebuilds the show from the values showing now.
    fn refresh(&mut self) {
        let (selection, cue) = *self.stage.selection.current();
        self.selection_cue = cue;
        let settings = power_capped(
            Settings {
                brightness: *self.stage.brightness.current(),
                framerate: *self.stage.framerate.current(),
                selection,
            },
            self.power,
        );
        let image_id = match selection.mode {
            Mode::Image => self.image_ids.get(usize::from(selection.index)).copied(),
            _ => None,
        };
        self.image_id = image_id;
        let sequence = match selection.mode {
            Mode::Sequence => self.stage.sequences.get(usize::from(selection.index)).and_then(|q| q.current().as_ref()),
            _ => None,
        };
        self.show = Show {
            mode: selection.mode,
            index: selection.index,
            brightness: settings.brightness,
            framerate: settings.framerate,
            patterns: self.stage.patterns.iter().map(|p| *p.current()).collect(),
            sequences: self.stage.sequences.iter().map(|q| q.current().clone()).collect(),
            image: image_for_teensy(selection.mode, image_id, sequence, |id| self.images.contains_key(&id))
                .and_then(|id| self.images.get(&id).cloned()),
            live: None,
        };
    }

    fn program<'a>(&'a self, live: &'a [Rgb], now_us: u64) -> Program<'a> {
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
                Some(Some(sequence)) => Program::Sequence {
                    sequence,
                    started_ms: sequence_start(self.selection_cue, now_us),
                    content: self,
                },
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

/// Counters the frame loop keeps, for `/api/status`, `/api/clock` and benchmarks.
#[derive(Debug, Default)]
pub struct PlayerStats {
    /// Columns rendered and handed to the column outputs.
    pub columns: AtomicU64,
    /// Writes an output refused.
    pub output_errors: AtomicU64,
    last_cue: Mutex<Option<CueShown>>,
}

impl PlayerStats {
    /// The last cued change and when it showed.
    pub fn last_cue(&self) -> Option<CueShown> {
        *self.last_cue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_cue(&self, shown: CueShown) {
        *self.last_cue.lock().unwrap_or_else(|p| p.into_inner()) = Some(shown);
    }
}

impl Player {
    /// Starts playing on `outputs`, with a strip of `leds` LEDs.
    pub fn start(
        state: Arc<impl PlayerParts>,
        outputs: Vec<Box<dyn Output>>,
        renderer: Renderer,
        audio: AudioChoice,
    ) -> Player {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("povpoi-player".into())
            .spawn(move || run(state.as_ref(), outputs, renderer, audio.source(), &flag))
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
    state: &impl PlayerParts,
    mut outputs: Vec<Box<dyn Output>>,
    mut renderer: Renderer,
    mut audio: Box<dyn AudioSource + Send>,
    stop: &AtomicBool,
) {
    let mut changes = state.library().changes();
    let mut playing = Playing::new(state);
    let mut live = Vec::new();
    let mut sent: Option<Show> = None;
    let mut column = vec![Rgb::default(); renderer.leds()];
    // Finished colour ramps and the patterns' draws, kept from column to column.
    let mut cache = ColumnCache::new(finish_for(Mode::Live, 255));
    let mut strip = (renderer.leds(), state.strip().order);
    let wants_columns = outputs.iter().any(|o| o.wants_columns());
    let mut loaded_at = state.show().now_us();
    let mut retry_outputs_at = 0;
    // A cued switch waiting for its first column to go out, to be noted then.
    let mut switched: Option<Cue> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = state.show().now_us();
        // Changes take effect at the start of a column: the column that started before a
        // cue keeps what played, on every poi alike, however late this loop woke up.
        let at = if wants_columns { column_start(now, playing.show.framerate) } else { now };
        let StripSettings { power, leds, order } = state.strip();
        // A new LED count or colour order applies from the next column, without a restart.
        if (usize::from(leds), order) != strip {
            match Renderer::new(leds) {
                Ok(resized) => {
                    renderer = resized;
                    column = vec![Rgb::default(); renderer.leds()];
                    for output in &mut outputs {
                        output.restrip(leds, order);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LED count not applied"),
            }
            strip = (usize::from(leds), order);
        }
        let power_changed = power != playing.power;
        let waiting_for_pixels = playing.incomplete && now.saturating_sub(loaded_at) >= PIXEL_RETRY_US;
        let mut changed = false;
        if changes.has_changed().unwrap_or(false) || power_changed || waiting_for_pixels {
            changes.borrow_and_update();
            changed = playing.reload(state, at);
            loaded_at = now;
        }
        changed |= playing.advance(at);
        if changed {
            let cue = playing.stage.latest_cue();
            switched = (cue != Cue::NOW).then_some(cue);
        }
        if playing.show.mode == Mode::Live {
            let pushed = state.live().lock().unwrap_or_else(|p| p.into_inner());
            if *pushed != live {
                live.clone_from(&pushed);
            }
        }
        playing.show.live = (playing.show.mode == Mode::Live).then(|| live.clone());
        let flash = state.identify().phase(Instant::now());
        let flashing = flash.map(|lit| identify_show(&playing.show, lit));
        let show = flashing.as_ref().unwrap_or(&playing.show);
        if sent.as_ref() != Some(show) && now >= retry_outputs_at {
            let mut all_took_it = true;
            for output in &mut outputs {
                if let Err(e) = output.show_changed(show) {
                    note_error(state, output.as_ref(), &e);
                    all_took_it = false;
                }
            }
            // A board that failed half-way (unplugged, rebooting) is sent the show again
            // a second later rather than left with part of it.
            if all_took_it {
                sent = Some(show.clone());
            } else {
                sent = None;
                retry_outputs_at = now + 1_000_000;
            }
            if !wants_columns && let Some(cue) = switched.take() {
                state.stats().note_cue(CueShown { cue_us: cue.0, show_us: now, host_us: host_time_us() });
            }
        }

        let mut wake = now + LONGEST_NAP_US;
        if wants_columns {
            let middle_ms = povpoi_app::stage::column_middle_ms(now.max(at), playing.show.framerate);
            let level = audio.level(middle_ms);
            cache.set_finish(finish_for(playing.show.mode, playing.show.brightness));
            renderer.render_cached(
                &playing.program(&live, middle_ms * 1_000),
                middle_ms,
                playing.show.framerate,
                level,
                &mut cache,
                &mut column,
            );
            if let Some(lit) = flash {
                identify_column(&mut column, lit);
            }
            for output in outputs.iter_mut().filter(|o| o.wants_columns()) {
                if let Err(e) = output.column(&column) {
                    note_error(state, output.as_ref(), &e);
                }
            }
            state.stats().columns.fetch_add(1, Ordering::Relaxed);
            if let Some(cue) = switched.take() {
                // The switch is the column start it was made at (with a new frame rate the
                // column drawn may have begun under the new rate a little before it).
                state.stats().note_cue(CueShown { cue_us: cue.0, show_us: at, host_us: host_time_us() });
            }
            wake = povpoi_app::stage::next_column_start(now.max(at), playing.show.framerate);
            // At a low frame rate the flash still goes on and off on time.
            if flash.is_some() {
                wake = wake.min(now + IDENTIFY_HALF_PERIOD.as_micros() as u64);
            }
        }
        // A cue before the next column wakes the loop for a mirroring output (the Teensy
        // is sent a change at its cue); column outputs switch on the column boundary after it.
        if let Some(cue) = playing.stage.next_cue().filter(|c| c.0 > now)
            && !wants_columns
        {
            wake = wake.min(cue.0);
        }
        nap_until(state, wake, stop);
    }
}

/// Sleeps until show time `deadline` (µs), at most [`LONGEST_NAP_US`] at a time so the stop
/// flag, the library and the cues are looked at often, and at most a second in all (a frame
/// at 1 fps).
fn nap_until(state: &impl PlayerParts, deadline: u64, stop: &AtomicBool) {
    let started = std::time::Instant::now();
    loop {
        let left = deadline.saturating_sub(state.show().now_us());
        if left == 0 || stop.load(Ordering::Relaxed) || started.elapsed() >= Duration::from_secs(1) {
            return;
        }
        std::thread::sleep(Duration::from_micros(left.min(LONGEST_NAP_US)));
    }
}

fn note_error(state: &impl PlayerParts, output: &dyn Output, e: &std::io::Error) {
    let count = state.stats().output_errors.fetch_add(1, Ordering::Relaxed);
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
    fn columns_start_on_show_time_boundaries_and_sequences_at_their_cue() {
        assert_eq!(column_start(0, 50), 0);
        assert_eq!(column_start(19_999, 50), 0);
        assert_eq!(column_start(20_000, 50), 20_000);
        // 3 fps: columns start at 0, 333,334, 666,667 µs (rounded up, never before).
        assert_eq!(column_start(333_333, 3), 0);
        assert_eq!(column_start(333_334, 3), 333_334);
        assert_eq!(column_start(1_000_000, 3), 1_000_000);
        assert_eq!(sequence_start(Cue(5_000_000), 6_000_000), 5_000);
        assert_eq!(sequence_start(Cue(9_000_000), 6_000_000), 0, "a cue not reached: timeline start");
        assert_eq!(sequence_start(Cue::NOW, 6_000_000), 0);
    }

    #[test]
    fn identify_flashes_on_and_off_then_ends() {
        let identify = Identify::default();
        let now = Instant::now();
        assert_eq!(identify.phase(now), None, "not asked");
        identify.start(Duration::from_secs(1));
        let at = |ms| identify.phase(now + Duration::from_millis(ms));
        assert_eq!((at(10), at(130), at(260), at(990)), (Some(true), Some(false), Some(true), Some(false)));
        assert_eq!(at(1_010), None, "over after its time");
        assert_eq!(at(10), None, "and stays over");

        // A board that renders itself is sent the flash as a live column over the show.
        let show = Show { mode: Mode::Pattern, index: 2, brightness: 10, framerate: 40, ..Show::default() };
        let lit = identify_show(&show, true);
        assert_eq!((lit.mode, lit.brightness, lit.framerate), (Mode::Live, 255, 40));
        assert_eq!(lit.live, Some(vec![Rgb::new(IDENTIFY_LEVEL, IDENTIFY_LEVEL, IDENTIFY_LEVEL); 32]));
        assert_eq!(identify_show(&show, false).live, Some(vec![Rgb::default(); 32]));
    }

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
