//! The standard gRPC health service (`grpc.health.v1.Health`): `SERVING` for the server
//! (`""`) and for `moby.buildkit.v1.Control` while the daemon runs, `NOT_SERVING` once it
//! is shutting down; other names are `SERVICE_UNKNOWN` (`NotFound` for `Check`, as gRPC's
//! own servers answer).

use std::pin::Pin;

use hoist_proto::health::health_check_response::ServingStatus;
use hoist_proto::health::health_server::Health;
use hoist_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::calls::{CallGuard, Calls};

/// Health answers, following the daemon's shutdown signal.
#[derive(Debug, Clone)]
pub struct HealthService {
    stopping: watch::Receiver<bool>,
    calls: Calls,
}

impl HealthService {
    /// `stopping` turns true when the daemon starts shutting down; each call is counted in
    /// `calls` (a watch until its stream ends).
    pub fn new(stopping: watch::Receiver<bool>, calls: Calls) -> HealthService {
        HealthService { stopping, calls }
    }

    fn status(&self, service: &str) -> Option<ServingStatus> {
        let known =
            service.is_empty() || service == hoist_proto::control::control_server::SERVICE_NAME;
        known.then(|| {
            if *self.stopping.borrow() {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            }
        })
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let _call = self.calls.begin();
        let service = request.into_inner().service;
        match self.status(&service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    type WatchStream = WatchStream;

    /// The status now; for a known service, `NOT_SERVING` when shutdown begins, then the
    /// stream ends (so a watching client does not hold the shutdown up).
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let call = self.calls.begin();
        let service = request.into_inner().service;
        let Some(now) = self.status(&service) else {
            let once = tokio_stream::once(Ok(response(ServingStatus::ServiceUnknown)));
            return Ok(Response::new(Box::pin(once)));
        };
        Ok(Response::new(watch_stream(
            now,
            self.stopping.clone(),
            call,
        )))
    }
}

/// `now`, then (unless `now` already was) `NOT_SERVING` once `stopping` turns true; the
/// call lasts as long as the stream.
fn watch_stream(
    now: ServingStatus,
    mut stopping: watch::Receiver<bool>,
    call: CallGuard,
) -> WatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let _call = call;
        if tx.send(Ok(response(now))).await.is_err() || now == ServingStatus::NotServing {
            return;
        }
        // An error means the daemon dropped the sender: it is stopping too.
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            () = stopped => {
                let _ = tx.send(Ok(response(ServingStatus::NotServing))).await;
            }
            () = tx.closed() => {}
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
