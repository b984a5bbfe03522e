//! The book thread's resync policy: backoff with jitter per instrument, the per-connection
//! budget, the resubscribe timeout, and where each request goes (the REST thread, or the
//! connection's ingest thread as a resubscribe or a reconnect), and the periodic
//! housekeeping that sends what is due, republishes stale books and publishes the counters.

use super::*;

impl BookThread {
    /// The wait after `attempts` resyncs: `backoff_initial_ms * 2^(attempts-1)` up to
    /// `backoff_max_ms`, plus up to 50 % jitter (xorshift), in ns; 0 before the first.
    pub(super) fn backoff_ns(&mut self, attempts: u32) -> u64 {
        if attempts == 0 {
            return 0;
        }
        let p = &self.resync_policy;
        let base_ms = p
            .backoff_initial_ms
            .saturating_mul(1u64 << (attempts - 1).min(30))
            .min(p.backoff_max_ms);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base_ns = base_ms.saturating_mul(1_000_000);
        base_ns + self.jitter % (base_ns / 2 + 1)
    }

    pub(super) fn request_rest(&mut self, c: usize, id: InstrumentId) {
        if self
            .rest
            .try_send(RestRequest::Snapshot {
                conn: c,
                instrument: id,
            })
            .is_ok()
        {
            bump(&self.stats.rest_requests, 1);
        } else {
            self.requeue(id);
        }
    }

    /// A resync request that found its channel full: counted, and asked again by
    /// housekeeping once the book's backoff has passed.
    #[cold]
    pub(super) fn requeue(&mut self, id: InstrumentId) {
        bump(&self.stats.requests_requeued, 1);
        let i = id.index();
        if i < self.deferred_flag.len() && !self.deferred_flag[i] {
            self.deferred_flag[i] = true;
            self.deferred.push(id);
        }
    }

    /// Sends the engine's resync requests where they can be served now.
    pub(super) fn dispatch_resyncs(&mut self) {
        self.engine.take_resync_requests(&mut self.resyncs);
        if self.resyncs.is_empty() {
            return;
        }
        self.send_resyncs();
    }

    /// Sends `self.resyncs` (then empties it), holding back those in backoff and rebuilding
    /// connections over their budget.
    pub(super) fn send_resyncs(&mut self) {
        let mut resyncs = std::mem::take(&mut self.resyncs);
        let now = mono_ns();
        for &id in &resyncs {
            let Some(Some(c)) = self.topo.conn_of.get(id.index()).copied() else {
                continue;
            };
            if !self.connected.get(c).copied().unwrap_or(false) {
                continue; // the reconnect brings fresh snapshots
            }
            let i = id.index();
            if now < self.resync_not_before_ns[i] {
                // waiting for our backoff, not for the venue: the resubscribe timeout starts
                // when the deferred resync goes out
                self.resubscribed_at_ns[i] = None;
                if !self.deferred_flag[i] {
                    self.deferred_flag[i] = true;
                    self.deferred.push(id);
                    bump(&self.stats.resyncs_deferred, 1);
                }
                continue;
            }
            // the connection's budget: past it, rebuild the connection instead
            let window_ns = self
                .resync_policy
                .budget_window_ms
                .saturating_mul(1_000_000);
            let (start, spent) = &mut self.budget[c];
            if now.saturating_sub(*start) > window_ns {
                (*start, *spent) = (now, 0);
            }
            *spent += 1;
            if *spent > self.resync_policy.budget_per_connection {
                *spent = 0;
                *start = now;
                if let Some(tx) = self.ingest_control.get(c) {
                    if tx.try_send(IngestControl::Reconnect).is_ok() {
                        bump(&self.stats.resync_budget_reconnects, 1);
                    } else {
                        self.requeue(id);
                    }
                }
                continue;
            }
            let reset_ns = self.resync_policy.reset_after_ms.saturating_mul(1_000_000);
            if self.resync_sent_ns[i] != 0 && now.saturating_sub(self.resync_sent_ns[i]) > reset_ns
            {
                self.resync_attempts[i] = 0;
            }
            self.resync_attempts[i] = self.resync_attempts[i].saturating_add(1);
            self.resync_sent_ns[i] = now;
            let wait = self.backoff_ns(self.resync_attempts[i]);
            self.resync_not_before_ns[i] = now + wait;
            if self.topo.rest_book[id.index()] {
                self.request_rest(c, id);
            } else if let Some(tx) = self.ingest_control.get(c) {
                if tx.try_send(IngestControl::Resubscribe(id)).is_ok() {
                    bump(&self.stats.resubscribes, 1);
                    self.resubscribed_at_ns[id.index()] = Some(mono_ns());
                } else {
                    self.requeue(id);
                }
            }
        }
        resyncs.clear();
        self.resyncs = resyncs;
    }

    pub(super) fn housekeeping(&mut self, now_ns: u64) {
        for sh in &mut self.shards {
            sh.flush_ctl();
        }
        // resyncs whose backoff expired (a book synced meanwhile needs none)
        if !self.deferred.is_empty() {
            let mut due = std::mem::take(&mut self.resyncs);
            let mut k = 0;
            while k < self.deferred.len() {
                let id = self.deferred[k];
                let i = id.index();
                if self.engine.state(id) == Some(SyncState::Synced) {
                    self.deferred_flag[i] = false;
                    self.deferred.swap_remove(k);
                } else if now_ns >= self.resync_not_before_ns[i] {
                    self.deferred_flag[i] = false;
                    self.deferred.swap_remove(k);
                    due.push(id);
                } else {
                    k += 1;
                }
            }
            self.resyncs = due;
            if !self.resyncs.is_empty() {
                self.send_resyncs();
            }
        }
        // republish stale books as their latest state (a failure queues the book again)
        for s in 0..self.shards.len() {
            self.republish_stale(s);
        }
        // WebSocket books that a resubscribe did not resync: reconnect their connection
        let timeout_ns = self
            .resync_policy
            .resubscribe_timeout_ms
            .saturating_mul(1_000_000);
        for i in 0..self.resubscribed_at_ns.len() {
            let Some(at) = self.resubscribed_at_ns[i] else {
                continue;
            };
            let id = InstrumentId(i as u32);
            if self.engine.state(id) == Some(SyncState::Synced) {
                self.resubscribed_at_ns[i] = None;
            } else if now_ns.saturating_sub(at) > timeout_ns {
                self.resubscribed_at_ns[i] = None;
                if let Some(Some(c)) = self.topo.conn_of.get(i).copied() {
                    if let Some(tx) = self.ingest_control.get(c) {
                        if tx.try_send(IngestControl::Reconnect).is_err() {
                            // still unsynced: the next housekeeping finds it again
                            self.resubscribed_at_ns[i] = Some(at);
                            bump(&self.stats.requests_requeued, 1);
                        }
                    }
                }
            }
        }
        self.publish_stats();
        self.wake_fanout();
        if let Some(rec) = &mut self.latency {
            rec.tick(now_ns);
        }
    }
}
