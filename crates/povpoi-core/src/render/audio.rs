//! Where the audio-reactive patterns (types 11-15) get their level from.

/// A source of a sound level, 0 (silence) to 255 (loudest), read once per column.
pub trait AudioSource {
    /// The level at show time `t_ms`.
    fn level(&mut self, t_ms: u64) -> u8;
}

/// No microphone: always 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silence;

impl AudioSource for Silence {
    fn level(&mut self, _t_ms: u64) -> u8 {
        0
    }
}

/// A fixed level, for trying the audio patterns without sound.
#[derive(Clone, Copy, Debug)]
pub struct Constant(pub u8);

impl AudioSource for Constant {
    fn level(&mut self, _t_ms: u64) -> u8 {
        self.0
    }
}

/// A beat at 120 per minute: a jump to full level decaying over each 500 ms, a function of
/// show time only, so two poi given it react alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestSignal;

impl AudioSource for TestSignal {
    fn level(&mut self, t_ms: u64) -> u8 {
        let into_beat = (t_ms % 500) as u32;
        (255 - into_beat * 255 / 500) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_give_their_levels() {
        assert_eq!(Silence.level(123), 0);
        assert_eq!(Constant(77).level(5), 77);
        let mut beat = TestSignal;
        assert_eq!(beat.level(1_000), 255);
        assert_eq!(beat.level(1_250), 128);
        assert!(beat.level(1_499) < 2);
    }
}
