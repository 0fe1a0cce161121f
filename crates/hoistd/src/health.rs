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

/// Health answers, following the daemon's shutdown signal.
#[derive(Debug, Clone)]
pub struct HealthService {
    stopping: watch::Receiver<bool>,
}

impl HealthService {
    /// `stopping` turns true when the daemon starts shutting down.
    pub fn new(stopping: watch::Receiver<bool>) -> HealthService {
        HealthService { stopping }
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
        let service = request.into_inner().service;
        let Some(now) = self.status(&service) else {
            let once = tokio_stream::once(Ok(response(ServingStatus::ServiceUnknown)));
            return Ok(Response::new(Box::pin(once)));
        };
        let mut stopping = self.stopping.clone();
        let stream = async_stream(now, async move {
            // An error means the daemon dropped the sender: it is stopping too.
            let _ = stopping.wait_for(|stop| *stop).await;
        });
        Ok(Response::new(stream))
    }
}

/// `now`, then `NOT_SERVING` once `stopped` completes (unless `now` already was).
fn async_stream(
    now: ServingStatus,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> WatchStream {
    let first = tokio_stream::once(Ok(response(now)));
    if now == ServingStatus::NotServing {
        return Box::pin(first);
    }
    let later = futures_once(stopped);
    Box::pin(tokio_stream::StreamExt::chain(first, later))
}

fn futures_once(
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Result<HealthCheckResponse, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            () = stopped => { let _ = tx.send(Ok(response(ServingStatus::NotServing))).await; }
            () = tx.closed() => {}
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
