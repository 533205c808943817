//! Rounds: one piece of work done for many concurrent callers at once.
//!
//! Several costs on the write and read paths are per call, not per byte: a Raft entry
//! (append, sync, replicate, commit, apply, answer) or a quorum round confirming
//! leadership. Under load, callers arriving together can share one. [`Rounds`] queues
//! callers; a task takes whoever is waiting (up to a count and a weight), runs one round
//! for them all, and hands each its own answer. Callers that arrive while the rounds in
//! flight are at their limit wait for the next one, so batches grow with load by
//! themselves and a lone caller never waits for company: no timer, no added latency.
//!
//! A round starts only after every one of its callers arrived. That is what lets a
//! quorum round be shared by reads: it confirms leadership at a moment after each read
//! began, as each read alone would have.
//!
//! Limits: the queue holds at most `queue` callers (a caller beyond that waits to be
//! queued, which is back-pressure, not an error); a round takes at most `per_round`
//! callers and `weight` total weight (one caller heavier than that goes alone); at most
//! `in_flight` rounds run at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// How big and how many rounds may be.
#[derive(Clone, Copy, Debug)]
pub struct RoundLimits {
    /// Most callers waiting for a round.
    pub queue: usize,
    /// Most callers in one round.
    pub per_round: usize,
    /// Most total weight in one round (a heavier single caller goes alone).
    pub weight: usize,
    /// Most rounds running at once.
    pub in_flight: usize,
}

/// Why a caller got no answer from its round.
#[derive(Debug, PartialEq, Eq)]
pub enum RoundError {
    /// The rounds have stopped; the input was never taken into a round.
    Stopped,
    /// The round was dropped before answering (the node is stopping); whatever it did
    /// with the input is unknown.
    Abandoned,
}

/// A round's work: every caller's input in, one output per input out, in order.
pub type RoundFn<In, Out> =
    Arc<dyn Fn(Vec<In>) -> Pin<Box<dyn Future<Output = Vec<Out>> + Send>> + Send + Sync>;

struct Waiter<In, Out> {
    input: In,
    weight: usize,
    reply: oneshot::Sender<Out>,
}

/// A queue of callers served in shared rounds.
pub struct Rounds<In, Out> {
    sender: mpsc::Sender<Waiter<In, Out>>,
}

impl<In: Send + 'static, Out: Send + 'static> Rounds<In, Out> {
    /// Starts the task that runs rounds with `run` until `stop` is cancelled.
    pub fn start(limits: RoundLimits, stop: CancellationToken, run: RoundFn<In, Out>) -> Self {
        let (sender, receiver) = mpsc::channel(limits.queue.max(1));
        tokio::spawn(run_rounds(receiver, limits, stop, run));
        Rounds { sender }
    }

    /// Joins the next round with `input` (of `weight`) and waits for its answer.
    pub async fn call(&self, input: In, weight: usize) -> Result<Out, RoundError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            input,
            weight,
            reply,
        };
        self.sender
            .send(waiter)
            .await
            .map_err(|_| RoundError::Stopped)?;
        answer.await.map_err(|_| RoundError::Abandoned)
    }
}

async fn run_rounds<In: Send + 'static, Out: Send + 'static>(
    mut receiver: mpsc::Receiver<Waiter<In, Out>>,
    limits: RoundLimits,
    stop: CancellationToken,
    run: RoundFn<In, Out>,
) {
    let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    // A caller taken from the queue that did not fit in the previous round.
    let mut held_over: Option<Waiter<In, Out>> = None;
    loop {
        let first = match held_over.take() {
            Some(waiter) => waiter,
            None => tokio::select! {
                _ = stop.cancelled() => return,
                waiter = receiver.recv() => match waiter {
                    Some(waiter) => waiter,
                    None => return,
                },
            },
        };
        // Waiting for a free slot is what lets the next round fill up.
        let slot = tokio::select! {
            _ = stop.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let mut weight = first.weight;
        let mut round = vec![first];
        while round.len() < limits.per_round.max(1) {
            let Ok(waiter) = receiver.try_recv() else {
                break;
            };
            if weight + waiter.weight > limits.weight {
                held_over = Some(waiter);
                break;
            }
            weight += waiter.weight;
            round.push(waiter);
        }
        let (inputs, replies): (Vec<In>, Vec<oneshot::Sender<Out>>) = round
            .into_iter()
            .map(|waiter| (waiter.input, waiter.reply))
            .unzip();
        let work = run(inputs);
        tokio::spawn(async move {
            let outputs = work.await;
            drop(slot);
            // A round that answers fewer outputs than inputs leaves the rest Abandoned.
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(output);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn limits(per_round: usize, weight: usize, in_flight: usize) -> RoundLimits {
        RoundLimits {
            queue: 1000,
            per_round,
            weight,
            in_flight,
        }
    }

    /// Rounds that double their inputs, recording each round's size, taking `pause`.
    fn doubling(sizes: Arc<Mutex<Vec<usize>>>, pause: Duration) -> RoundFn<u64, u64> {
        Arc::new(move |inputs: Vec<u64>| {
            sizes.lock().unwrap().push(inputs.len());
            Box::pin(async move {
                tokio::time::sleep(pause).await;
                inputs.into_iter().map(|input| input * 2).collect()
            })
        })
    }

    /// Callers arriving while a round runs share the next one, and each gets the answer
    /// to its own input.
    #[tokio::test]
    async fn concurrent_callers_share_rounds_and_get_their_own_answers() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(Rounds::start(
            limits(64, usize::MAX, 1),
            CancellationToken::new(),
            doubling(Arc::clone(&sizes), Duration::from_millis(20)),
        ));
        let calls: Vec<_> = (0..40u64)
            .map(|input| {
                let rounds = Arc::clone(&rounds);
                tokio::spawn(async move { (input, rounds.call(input, 1).await) })
            })
            .collect();
        for call in calls {
            let (input, answer) = call.await.unwrap();
            assert_eq!(answer, Ok(input * 2));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(
            sizes.len() < 40,
            "40 concurrent callers ran in {} rounds: none shared",
            sizes.len()
        );
    }

    /// A round never holds more callers or weight than its limits, though a single
    /// caller heavier than the weight limit still gets its own round.
    #[tokio::test]
    async fn rounds_respect_count_and_weight_limits() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(Rounds::start(
            limits(5, 10, 1),
            CancellationToken::new(),
            doubling(Arc::clone(&sizes), Duration::from_millis(5)),
        ));
        let calls: Vec<_> = (0..30u64)
            .map(|input| {
                let rounds = Arc::clone(&rounds);
                let weight = if input == 7 { 50 } else { 3 };
                tokio::spawn(async move { rounds.call(input, weight).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_ok());
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 30);
        // Weight 3 each within a limit of 10: at most 3 per round.
        assert!(sizes.iter().all(|&size| size <= 3), "round sizes {sizes:?}");
    }

    /// No more rounds run at once than allowed.
    #[tokio::test]
    async fn in_flight_rounds_are_bounded() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let run: RoundFn<u64, u64> = {
            let running = Arc::clone(&running);
            let most = Arc::clone(&most);
            Arc::new(move |inputs: Vec<u64>| {
                let running = Arc::clone(&running);
                let most = Arc::clone(&most);
                Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    inputs
                })
            })
        };
        let rounds = Arc::new(Rounds::start(
            limits(1, usize::MAX, 2),
            CancellationToken::new(),
            run,
        ));
        let calls: Vec<_> = (0..12u64)
            .map(|input| {
                let rounds = Arc::clone(&rounds);
                tokio::spawn(async move { rounds.call(input, 1).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_ok());
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 2, "{most} rounds ran at once, limit 2");
        assert_eq!(most, 2, "two slots were never used together");
    }

    /// A round answering fewer outputs than inputs leaves the rest with an explicit
    /// Abandoned, never a hang or a wrong answer; after stop, callers are refused.
    #[tokio::test]
    async fn short_answers_are_abandoned_and_stopped_rounds_refuse() {
        let stop = CancellationToken::new();
        let run: RoundFn<u64, u64> = Arc::new(|_inputs: Vec<u64>| Box::pin(async { Vec::new() }));
        let rounds = Rounds::start(limits(8, usize::MAX, 1), stop.clone(), run);
        assert_eq!(rounds.call(1, 1).await, Err(RoundError::Abandoned));
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(rounds.call(2, 1).await, Err(RoundError::Stopped));
    }
}
