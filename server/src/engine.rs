//! The bound model: samples in, a published state out. Pure (sans-IO): the
//! daemon's shell feeds it samples and clock readings and publishes what
//! [`Engine::tick`] returns.
//!
//! Each tick:
//!
//! 1. **Disruptions.** Against the previous reading: the reader clock went
//!    backwards, `CLOCK_BOOTTIME − CLOCK_MONOTONIC` grew (a suspend, during
//!    which the reader clock stood still), or `CLOCK_REALTIME` moved against
//!    the reader clock by more than any slew explains (a step: a VM pause or
//!    migration, or a manual `date -s`). Any of these means samples can no
//!    longer be carried along the reader clock, so all of them, the frequency
//!    history and the holdover bound are dropped and the status is
//!    `disrupted` until the sources agree again.
//! 2. **Projection.** Every source's latest sample is carried to now with the
//!    current drift model ([`FrequencyEstimator::model`]); samples older than
//!    `max-sample-age` are dropped.
//! 3. **Selection** over the projected intervals ([`crate::selection`]).
//!    Agreement gives the bound (`synchronized`, or `degraded` with fewer
//!    than `min-agreeing` truechimers); disagreement gives `unsynchronized`.
//! 4. **Holdover.** With no usable sample at all, the last bound is carried
//!    forward at the unmeasured drift bound (`free-running`) for at most
//!    `holdover`; the datasheet bound rather than the measured one, because
//!    the wander allowance covers seconds, not an hour.
//!
//! Near a month end where a leap is scheduled or cannot be ruled out, the
//! drift bound also carries the leap smear's rate change (1/86400)
//! ([`crate::timescale::smear_allowance`]). The kernel's own ±1 s step of
//! `CLOCK_REALTIME` at a leap is not a disruption
//! ([`crate::timescale::is_leap_step`]): every sample is on the reader
//! clock, which does not step.
//!
//! Invariant: whenever the returned status is bounded, the returned interval
//! contains true time, provided the sources' samples did, at most
//! `max-faulty` sources lie, and the reader clock kept within the drift model.

use std::time::Duration;

use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState};
use tsod_proto::wire::SourceKind;
use tsod_proto::{ClockStatus, DriftModel, MonoInstant, Offset, Ppb, TimeInterval, Timestamp};

use crate::clock::ClockReading;
use crate::frequency::{FrequencyConfig, FrequencyEstimator};
use crate::sample::Sample;
use crate::selection::{self, Selection, Verdict};
use crate::timescale::{LeapSchedule, is_leap_step, smear_allowance};

/// What the engine needs from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sources that may lie at once; `None`: ⌊(n−1)/2⌋ of the sources that have samples.
    pub max_faulty: Option<usize>,
    /// Truechimers needed for `synchronized` (else `degraded`).
    pub min_agreeing: usize,
    /// How long a published anchor may be used.
    pub horizon: Duration,
    /// Samples older than this are dropped.
    pub max_sample_age: Duration,
    /// How long the last bound may be carried with no usable source.
    pub holdover: Duration,
    /// The frequency measurement.
    pub frequency: FrequencyConfig,
}

/// A source's stable id: its index in the order given to [`Engine::new`],
/// or the id given to [`Engine::reconfigure`] for sources added later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub usize);

/// A source as the engine sees it, for `tsod status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceState {
    /// Configured name.
    pub name: String,
    /// Kind.
    pub kind: SourceKind,
    /// Has a sample young enough to use.
    pub usable: bool,
    /// Rejected by the last selection.
    pub falseticker: bool,
    /// Midpoint of its projected interval minus the bound's midpoint.
    pub offset: Option<Offset>,
    /// Half-width of its projected interval.
    pub error: Option<Duration>,
    /// Why its last input was refused, if it was.
    pub last_error: Option<String>,
    /// Samples accepted so far.
    pub samples: u64,
    /// Inputs refused so far.
    pub rejects: u64,
}

/// Why the last disruption was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disruption {
    /// The reader clock went backwards.
    ReaderClockBackwards,
    /// The host was suspended.
    Suspend,
    /// The system clock stepped against the reader clock.
    RealtimeStep,
    /// The hypervisor announced one (VMClock: live migration, snapshot
    /// restore; [`crate::clock::VmClockWatched`]).
    Hypervisor,
    /// More than `max-faulty` sources each gave a fresh sample disjoint from
    /// the published bound carried to its instant: the bound itself failed,
    /// as after a VM pause (every clock of the guest froze, so no reading
    /// shows it) or a migration the hypervisor did not announce.
    SourcesContradict,
}

/// What a tick produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    /// What to publish.
    pub state: PublishedState,
    /// The drift model used (`None` when the reader clock cannot be modelled).
    pub model: Option<DriftModel>,
    /// A disruption detected in this tick.
    pub disruption: Option<Disruption>,
}

/// The bound model of one site.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    sources: Vec<Slot>,
    /// Where each [`SourceId`] is in `sources` (`None`: not a source of
    /// this engine, or removed by a reconfiguration).
    positions: Vec<Option<usize>>,
    frequency: FrequencyEstimator,
    holdover_from: Option<Sample>,
    disrupted: bool,
    /// Samples taken at or before this reader instant are from before the
    /// last disruption (the reader clock stood still or jumped since) and
    /// are refused, however late they arrive.
    not_before: Option<MonoInstant>,
    disruption_count: u64,
    last_reading: Option<ClockReading>,
    writer_instance: u64,
    leaps: std::sync::Arc<LeapSchedule>,
}

#[derive(Clone, Debug)]
struct Slot {
    state: SourceState,
    sample: Option<Sample>,
    /// The sample's instant when it was last compared with the published
    /// bound, and whether it was disjoint from it.
    checked: Option<(MonoInstant, bool)>,
}

impl Slot {
    /// A source with nothing heard yet.
    fn new(name: String, kind: SourceKind) -> Self {
        Self {
            state: SourceState {
                name,
                kind,
                usable: false,
                falseticker: false,
                offset: None,
                error: None,
                last_error: None,
                samples: 0,
                rejects: 0,
            },
            sample: None,
            checked: None,
        }
    }
}

/// Gap beyond which `CLOCK_BOOTTIME − CLOCK_MONOTONIC` growth is a suspend.
const SUSPEND_THRESHOLD: Duration = Duration::from_millis(1);
/// Fastest slew a discipline applies to the system clock (chronyd's default
/// `maxslewrate` is 83 333 ppm): realtime moving faster against the reader
/// clock than this, plus a millisecond, is a step.
const MAX_SLEW_DIVISOR: u64 = 8;
/// The least drift bound at which a sample and the published bound are
/// compared for contradictions ([`Engine::tick`]): 1000 ppm.
const CONTRADICTION_RATE: Ppb = Ppb::from_ppm(1_000);

impl Engine {
    /// An engine for `sources` (name and kind, in [`SourceId`] order).
    /// `previous` is the state a previous daemon left in a reused segment:
    /// if it was a valid bound of this boot, not stale and not crossed by a
    /// suspend, it seeds holdover so clients keep working across the restart.
    pub fn new(
        config: EngineConfig,
        sources: Vec<(String, SourceKind)>,
        writer_instance: u64,
        previous: Option<PublishedState>,
        now: ClockReading,
    ) -> Self {
        let sources: Vec<Slot> = sources.into_iter().map(|(name, kind)| Slot::new(name, kind)).collect();
        let holdover_from = previous.and_then(|p| adoptable(&p, &now));
        let positions = (0..sources.len()).map(Some).collect();
        Self {
            config,
            sources,
            positions,
            frequency: FrequencyEstimator::new(config.frequency),
            holdover_from,
            disrupted: false,
            not_before: None,
            disruption_count: previous.map_or(0, |p| p.disruption_count),
            last_reading: Some(now),
            writer_instance,
            leaps: std::sync::Arc::new(LeapSchedule::default()),
        }
    }

    /// The leap schedule the smear allowance follows (default: none known,
    /// so every month end may have a smear).
    #[must_use]
    pub fn with_leap_schedule(mut self, leaps: std::sync::Arc<LeapSchedule>) -> Self {
        self.leaps = leaps;
        self
    }

    /// A sample from source `id`. One measured at or before the last
    /// disruption is refused (counted as a reject).
    pub fn on_sample(&mut self, id: SourceId, sample: Sample) {
        if self.not_before.is_some_and(|limit| sample.at <= limit) {
            self.on_reject(id, "measured before a clock disruption");
            return;
        }
        if let Some(slot) = self.slot_mut(id) {
            slot.sample = Some(sample);
            slot.state.samples = slot.state.samples.saturating_add(1);
            slot.state.last_error = None;
        }
    }

    /// Source `id` refused an input (counted and shown; its last good sample stays).
    pub fn on_reject(&mut self, id: SourceId, reason: impl Into<String>) {
        if let Some(slot) = self.slot_mut(id) {
            slot.state.rejects = slot.state.rejects.saturating_add(1);
            slot.state.last_error = Some(reason.into());
        }
    }

    /// The slot of source `id`, if it is one of this engine's.
    fn slot_mut(&mut self, id: SourceId) -> Option<&mut Slot> {
        let position = self.positions.get(id.0).copied().flatten()?;
        self.sources.get_mut(position)
    }

    /// Changes the set of sources (a configuration reload): `sources` lists
    /// every source to have from now on, in order, each with its stable id.
    /// An id the engine had keeps its sample, counters and verdicts (its
    /// name and kind are updated); a new id starts empty; ids not listed
    /// are dropped with their samples. The published bound, the drift
    /// measurement and the disruption state carry over, so readers see no
    /// gap: the next tick selects among the new set (holding over if none
    /// of it is usable yet). `config` replaces the engine's configuration
    /// (its defaults may depend on the number of sources).
    pub fn reconfigure(&mut self, config: EngineConfig, sources: Vec<(SourceId, String, SourceKind)>) {
        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.sources).into_iter().map(Some).collect();
        let old_positions = std::mem::take(&mut self.positions);
        for (id, name, kind) in sources {
            let kept = old_positions.get(id.0).copied().flatten().and_then(|p| old.get_mut(p)).and_then(Option::take);
            let slot = match kept {
                Some(mut slot) => {
                    if slot.state.kind != kind {
                        slot = Slot::new(name, kind);
                    } else {
                        slot.state.name = name;
                    }
                    slot
                }
                None => Slot::new(name, kind),
            };
            if self.positions.len() <= id.0 {
                self.positions.resize(id.0.saturating_add(1), None);
            }
            if let Some(position) = self.positions.get_mut(id.0) {
                *position = Some(self.sources.len());
            }
            self.sources.push(slot);
        }
        self.config = config;
    }

    /// The sources as of the last tick.
    pub fn sources(&self) -> impl Iterator<Item = &SourceState> {
        self.sources.iter().map(|s| &s.state)
    }

    /// Computes the state to publish at `now`.
    pub fn tick(&mut self, now: ClockReading) -> Tick {
        let disruption = self.last_reading.and_then(|last| detect_disruption(&last, &now));
        self.last_reading = Some(now);
        if disruption.is_some() {
            self.disrupt(now.raw);
        }
        let allowance = smear_allowance(&self.leaps, now.realtime);
        let Some(model) = self.frequency.model().and_then(|m| widen(m, allowance)) else {
            return self.unbounded(now, ClockStatus::Unsynchronized, None, disruption);
        };
        // f counts against the configured sources, not the ones heard from:
        // with f = 1 a lone reporting source may be the liar, so it cannot
        // carry a bound on its own (the site free-runs instead).
        let max_faulty = self.config.max_faulty.unwrap_or_else(|| selection::default_max_faulty(self.sources.len()));
        let disruption = match disruption {
            Some(d) => Some(d),
            None => self.check_contradictions(now.raw, model, max_faulty),
        };
        let projected = self.project(now.raw, model);
        if projected.is_empty() {
            return self.holdover(now, model, disruption);
        }
        if projected.len() <= max_faulty {
            return self.holdover(now, model, disruption);
        }
        let intervals: Vec<TimeInterval> = projected.iter().map(|(_, i)| *i).collect();
        match selection::select(&intervals, max_faulty) {
            Selection::Agreed { bound, verdicts } => {
                let mut agreeing = 0usize;
                for ((index, interval), verdict) in projected.iter().zip(&verdicts) {
                    let falseticker = *verdict == Verdict::Falseticker;
                    agreeing = agreeing.saturating_add(usize::from(!falseticker));
                    if let Some(slot) = self.sources.get_mut(*index) {
                        slot.state.falseticker = falseticker;
                        slot.state.offset = Some(offset(interval, &bound));
                    }
                }
                let sample = Sample { at: now.raw, interval: bound };
                self.frequency.observe(sample);
                self.holdover_from = Some(sample);
                self.disrupted = false;
                // Sources that do not all overlap, none of them out-voted: a
                // liar is certainly present and unidentified (two sources
                // give their hull). The bound holds; the status says so.
                let unresolved = agreeing == projected.len() && !all_overlap(&intervals);
                let status = if agreeing >= self.config.min_agreeing && !unresolved {
                    ClockStatus::Synchronized
                } else {
                    ClockStatus::Degraded
                };
                self.bounded(now, bound, model.rates(), status, model, disruption)
            }
            Selection::NoMajority { .. } => {
                for (index, _) in &projected {
                    if let Some(slot) = self.sources.get_mut(*index) {
                        slot.state.falseticker = false;
                        slot.state.offset = None;
                    }
                }
                let status = if self.disrupted { ClockStatus::Disrupted } else { ClockStatus::Unsynchronized };
                self.unbounded(now, status, Some(model), disruption)
            }
        }
    }

    /// Every usable sample carried to `now`, with its source index; updates
    /// the sources' `usable` and `error`, and drops samples that are too old.
    fn project(&mut self, now: MonoInstant, model: DriftModel) -> Vec<(usize, TimeInterval)> {
        let max_age = self.config.max_sample_age;
        let mut out = Vec::new();
        for (index, slot) in self.sources.iter_mut().enumerate() {
            let fresh = slot.sample.filter(|s| {
                now.as_nanos().checked_sub(s.at.as_nanos()).is_some_and(|age| Duration::from_nanos(age) <= max_age)
            });
            slot.sample = fresh;
            let projected = fresh.and_then(|s| model.extrapolate(s.interval, s.at, now));
            slot.state.usable = projected.is_some();
            slot.state.error = projected.map(|i| i.half_width());
            if projected.is_none() {
                slot.state.falseticker = false;
                slot.state.offset = None;
            }
            if let Some(interval) = projected {
                out.push((index, interval));
            }
        }
        out
    }

    /// Carries the last bound forward with no (or too few) sources, at the
    /// holdover model: the datasheet tolerance widened to the measured
    /// frequency (so a clock beyond its datasheet stays covered).
    fn holdover(&mut self, now: ClockReading, model: DriftModel, disruption: Option<Disruption>) -> Tick {
        let datasheet =
            self.frequency.holdover_model().and_then(|m| widen(m, smear_allowance(&self.leaps, now.realtime)));
        let carried = self.holdover_from.zip(datasheet).and_then(|(from, datasheet)| {
            let age = Duration::from_nanos(now.raw.as_nanos().checked_sub(from.at.as_nanos())?);
            if age > self.config.holdover || self.disrupted {
                return None;
            }
            Some((datasheet.extrapolate(from.interval, from.at, now.raw)?, datasheet))
        });
        match carried {
            Some((interval, datasheet)) => {
                self.bounded(now, interval, datasheet.rates(), ClockStatus::FreeRunning, model, disruption)
            }
            None => {
                let status = if self.disrupted { ClockStatus::Disrupted } else { ClockStatus::Unsynchronized };
                self.unbounded(now, status, Some(model), disruption)
            }
        }
    }

    /// Compares every sample not yet compared with the last published bound
    /// (both carried to the later of their instants). A correct sample and
    /// a correct bound both contain true time, so they meet: a disjoint pair
    /// means one of them is wrong. More than `max_faulty` sources disjoint
    /// at once cannot all be liars, so the bound is: a disruption no clock
    /// reading showed (a VM pause, an unannounced migration). The disjoint
    /// samples are the evidence and are kept; everything older is dropped.
    fn check_contradictions(&mut self, now: MonoInstant, model: DriftModel, max_faulty: usize) -> Option<Disruption> {
        let bound = self.holdover_from?;
        // Carried at no less than the widest rate any configuration allows
        // (`max-drift-ppm` ≤ 1000): a clock that merely runs beyond its
        // datasheet is the frequency estimator's to measure, not a
        // disruption; what is caught is a jump.
        let check = DriftModel::new(model.frequency(), Ppb::new(model.bound().get().max(CONTRADICTION_RATE.get())))
            .unwrap_or(model);
        let mut evidence = 0usize;
        for slot in &mut self.sources {
            let Some(sample) = slot.sample else {
                slot.checked = None;
                continue;
            };
            if slot.checked.is_none_or(|(at, _)| at != sample.at) {
                slot.checked = Some((sample.at, disjoint(&bound, &sample, check)));
            }
            evidence = evidence.saturating_add(usize::from(slot.checked.is_some_and(|(_, d)| d)));
        }
        if evidence <= max_faulty {
            return None;
        }
        let kept: Vec<Option<Sample>> =
            self.sources.iter().map(|slot| slot.sample.filter(|_| slot.checked.is_some_and(|(_, d)| d))).collect();
        let earliest = kept.iter().flatten().map(|s| s.at).min();
        self.disrupt(now);
        self.not_before = earliest.and_then(|at| at.as_nanos().checked_sub(1)).map(MonoInstant::from_nanos);
        for (slot, sample) in self.sources.iter_mut().zip(kept) {
            slot.sample = sample;
        }
        Some(Disruption::SourcesContradict)
    }

    fn disrupt(&mut self, detected_at: MonoInstant) {
        self.not_before = Some(detected_at);
        for slot in &mut self.sources {
            slot.sample = None;
            slot.checked = None;
            slot.state.usable = false;
            slot.state.falseticker = false;
            slot.state.offset = None;
            slot.state.error = None;
        }
        self.frequency.reset();
        self.holdover_from = None;
        self.disrupted = true;
        self.disruption_count = self.disruption_count.saturating_add(1);
    }

    fn bounded(
        &self,
        now: ClockReading,
        interval: TimeInterval,
        rates: RateBounds,
        status: ClockStatus,
        model: DriftModel,
        disruption: Option<Disruption>,
    ) -> Tick {
        let anchor = Anchor {
            reference: now.raw,
            interval,
            rates,
            status,
            valid_until: now.raw.checked_add(self.config.horizon).unwrap_or(now.raw),
        };
        Tick { state: self.state(anchor, now), model: Some(model), disruption }
    }

    fn unbounded(
        &self,
        now: ClockReading,
        status: ClockStatus,
        model: Option<DriftModel>,
        disruption: Option<Disruption>,
    ) -> Tick {
        let anchor = Anchor {
            reference: now.raw,
            interval: TimeInterval::point(Timestamp::EPOCH),
            rates: RateBounds::EXACT,
            status,
            valid_until: now.raw,
        };
        Tick { state: self.state(anchor, now), model, disruption }
    }

    fn state(&self, anchor: Anchor, now: ClockReading) -> PublishedState {
        PublishedState {
            anchor,
            disruption_count: self.disruption_count,
            reference_boottime: now.boottime,
            writer_instance: self.writer_instance,
        }
    }
}

/// A disruption between two readings, if any (see the module doc).
pub fn detect_disruption(last: &ClockReading, now: &ClockReading) -> Option<Disruption> {
    let Some(d_raw) = now.raw.as_nanos().checked_sub(last.raw.as_nanos()) else {
        return Some(Disruption::ReaderClockBackwards);
    };
    let sleep_before = last.boottime.as_nanos().saturating_sub(last.monotonic.as_nanos());
    let sleep_now = now.boottime.as_nanos().saturating_sub(now.monotonic.as_nanos());
    if sleep_now.saturating_sub(sleep_before) > nanos(SUSPEND_THRESHOLD) {
        return Some(Disruption::Suspend);
    }
    if now.hypervisor_epoch != last.hypervisor_epoch {
        return Some(Disruption::Hypervisor);
    }
    let d_real = i128::from(now.realtime.as_nanos()) - i128::from(last.realtime.as_nanos());
    let allowed = i128::from(nanos(Duration::from_millis(1)).saturating_add(d_raw / MAX_SLEW_DIVISOR));
    let step = d_real - i128::from(d_raw);
    if step.abs() > allowed && !is_leap_step(step, now.realtime, allowed) {
        return Some(Disruption::RealtimeStep);
    }
    None
}

/// The previous daemon's bound, if it may seed holdover now.
fn adoptable(previous: &PublishedState, now: &ClockReading) -> Option<Sample> {
    let anchor = &previous.anchor;
    if !anchor.status.is_bounded() || now.raw > anchor.valid_until || now.raw < anchor.reference {
        return None;
    }
    // A suspend since the anchor shows as BOOTTIME running ahead of the raw clock.
    let d_raw = now.raw.as_nanos().checked_sub(anchor.reference.as_nanos())?;
    let d_boot = now.boottime.as_nanos().checked_sub(previous.reference_boottime.as_nanos())?;
    let allowed = nanos(SUSPEND_THRESHOLD).saturating_add(d_raw / MAX_SLEW_DIVISOR);
    if d_boot.abs_diff(d_raw) > allowed {
        return None;
    }
    Some(Sample { at: anchor.reference, interval: anchor.interval })
}

/// Whether `sample` and `bound` share no instant once the earlier of the
/// two is carried to the later's instant with `model`. `false` when one
/// cannot be carried (no evidence either way).
fn disjoint(bound: &Sample, sample: &Sample, model: DriftModel) -> bool {
    let (early, late) = if sample.at <= bound.at { (sample, bound) } else { (bound, sample) };
    model.extrapolate(early.interval, early.at, late.at).is_some_and(|carried| {
        carried.latest() < late.interval.earliest() || late.interval.latest() < carried.earliest()
    })
}

/// Whether one instant lies in every interval.
fn all_overlap(intervals: &[TimeInterval]) -> bool {
    let latest_start = intervals.iter().map(TimeInterval::earliest).max();
    let earliest_end = intervals.iter().map(TimeInterval::latest).min();
    latest_start.zip(earliest_end).is_none_or(|(start, end)| start <= end)
}

/// `model` with its bound widened by `extra` (`None` beyond what a model can be).
fn widen(model: DriftModel, extra: Ppb) -> Option<DriftModel> {
    DriftModel::new(model.frequency(), Ppb::new(model.bound().get().saturating_add(extra.get()))).ok()
}

fn offset(source: &TimeInterval, bound: &TimeInterval) -> Offset {
    let diff = i128::from(source.midpoint().as_nanos()) - i128::from(bound.midpoint().as_nanos());
    Offset::from_nanos(i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX }))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
