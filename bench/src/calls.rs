//! The calls each scenario makes, each checking that the answer is the one expected (a wrong
//! verdict, e.g. an app timing out, would make the numbers meaningless).

use std::time::Duration;

use roomhooks::v1::{
    ListAppsRequest, ListAppsResponse, OutcomeStatus, PostEventsItem, PostRoomCreateRequest,
    PreRoomCreateRequest, PreRoomUserJoinRequest, admin_client::AdminClient, post_events_item,
};
use roomhooks_sdk::RoomHooksClient;
use tonic::transport::{Channel, Endpoint};

use crate::{
    error::Error,
    load::Caller,
    relay_proto::{Payload, relay_client::RelayClient},
    workload,
};

/// The deadline every call carries (as a production backend's would).
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Opens one HTTP/2 connection with TCP_NODELAY, like the SDK's backend client.
pub async fn channel(endpoint: &str) -> Result<Channel, Error> {
    Endpoint::from_shared(endpoint.to_owned())
        .map_err(|source| Error::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|source| Error::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// `Admin.ListApps` at the sidecar `admin` talks to.
pub async fn list_apps(admin: &mut AdminClient<Channel>) -> Result<ListAppsResponse, Error> {
    admin
        .list_apps(ListAppsRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| Error::Rpc {
            what: "Admin.ListApps",
            status,
        })
}

/// Opens a channel balancing calls over every one of `endpoints` (the cluster rows' backend,
/// which spreads its calls over the sidecars as a load balancer would).
pub fn balanced_channel(endpoints: &[String]) -> Result<Channel, Error> {
    let endpoints = endpoints
        .iter()
        .map(|endpoint| {
            Endpoint::from_shared(endpoint.clone())
                .map(|e| e.tcp_nodelay(true).connect_timeout(Duration::from_secs(5)))
                .map_err(|source| Error::Connect {
                    endpoint: endpoint.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Channel::balance_list(endpoints.into_iter()))
}

/// The floor: one unary call through the relay to the echo peer and back (`Relay.Call`), or,
/// with `hop: false`, a bare unary call the relay answers itself (`Relay.Echo`).
#[derive(Clone)]
pub struct FloorCaller {
    client: RelayClient<Channel>,
    body: Vec<u8>,
    hop: bool,
}

impl FloorCaller {
    /// A caller over `channel` to the relay; `hop` says whether calls go on to the echo peer.
    pub fn new(channel: Channel, hop: bool) -> Self {
        Self {
            client: RelayClient::new(channel),
            body: workload::floor_body(),
            hop,
        }
    }
}

impl Caller for FloorCaller {
    async fn call(&self) -> Result<(), Error> {
        let mut request = tonic::Request::new(Payload {
            id: 0,
            body: self.body.clone(),
        });
        request.set_timeout(DEADLINE);
        let mut client = self.client.clone();
        let (what, answered) = if self.hop {
            ("Relay.Call", client.call(request).await)
        } else {
            ("Relay.Echo", client.echo(request).await)
        };
        let reply = answered
            .map_err(|status| Error::Rpc { what, status })?
            .into_inner();
        if reply.body.len() != self.body.len() {
            return Err(Error::Answer(format!(
                "the relay echoed {} bytes instead of {}",
                reply.body.len(),
                self.body.len()
            )));
        }
        Ok(())
    }
}

/// PreRoomUserJoin against `apps` allowing apps.
#[derive(Clone)]
pub struct JoinCaller {
    client: RoomHooksClient,
    request: PreRoomUserJoinRequest,
    apps: usize,
}

impl JoinCaller {
    /// A caller over `channel` to the sidecar, expecting `apps` outcomes.
    pub fn new(channel: Channel, apps: usize) -> Self {
        Self {
            client: RoomHooksClient::from_channel(channel).with_deadline(DEADLINE),
            request: workload::join_request(),
            apps,
        }
    }
}

impl Caller for JoinCaller {
    async fn call(&self) -> Result<(), Error> {
        let verdict = self
            .client
            .pre_room_user_join(self.request.clone())
            .await
            .map_err(|status| Error::Rpc {
                what: "PreRoomUserJoin",
                status,
            })?;
        let allowed = verdict
            .outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Allowed as i32)
            .count();
        if !verdict.allowed || allowed != self.apps {
            return Err(Error::Answer(format!(
                "PreRoomUserJoin expected {} apps to allow, got {verdict:?}",
                self.apps
            )));
        }
        Ok(())
    }
}

/// PreRoomCreate against apps that each allow, extend and modify.
#[derive(Clone)]
pub struct CreateCaller {
    client: RoomHooksClient,
    request: PreRoomCreateRequest,
    apps: usize,
}

impl CreateCaller {
    /// A caller over `channel` to the sidecar, expecting `apps` apps in every stage.
    pub fn new(channel: Channel, apps: usize) -> Self {
        Self {
            client: RoomHooksClient::from_channel(channel).with_deadline(DEADLINE),
            request: workload::create_request(),
            apps,
        }
    }
}

impl Caller for CreateCaller {
    async fn call(&self) -> Result<(), Error> {
        let verdict = self
            .client
            .pre_room_create(self.request.clone())
            .await
            .map_err(|status| Error::Rpc {
                what: "PreRoomCreate",
                status,
            })?;
        let count = |status: OutcomeStatus| {
            verdict
                .outcomes
                .iter()
                .filter(|o| o.status == status as i32)
                .count()
        };
        let fields = verdict
            .room
            .as_ref()
            .and_then(|r| r.custom_fields.as_ref())
            .map_or(0, |f| f.fields.len());
        // Prevent: every app allows; Extend and Modify: every app changes the room.
        if !verdict.allowed
            || count(OutcomeStatus::Allowed) != self.apps
            || count(OutcomeStatus::Changed) != 2 * self.apps
            || fields != self.apps
        {
            return Err(Error::Answer(format!(
                "PreRoomCreate expected {} apps to allow, extend and modify, got {verdict:?}",
                self.apps
            )));
        }
        Ok(())
    }
}

/// PostRoomCreate, not waiting for delivery: one event per call, or `batch` events per
/// PostEvents call.
#[derive(Clone)]
pub struct PostCaller {
    client: RoomHooksClient,
    request: PostRoomCreateRequest,
    apps: u32,
    batch: Option<usize>,
}

impl PostCaller {
    /// A caller over `channel` to the sidecar, expecting `apps` subscribers; with `batch`, each
    /// call is one PostEvents of that many events.
    pub fn new(channel: Channel, apps: u32, batch: Option<usize>) -> Self {
        Self {
            client: RoomHooksClient::from_channel(channel).with_deadline(DEADLINE),
            request: workload::post_request(),
            apps,
            batch,
        }
    }

    /// Events each call sends.
    pub fn events_per_call(&self) -> u64 {
        self.batch.map_or(1, |n| n as u64)
    }
}

impl Caller for PostCaller {
    async fn call(&self) -> Result<(), Error> {
        let (what, accepted) = match self.batch {
            None => (
                "PostRoomCreate",
                vec![
                    self.client
                        .post_room_create(self.request.clone())
                        .await
                        .map_err(|status| Error::Rpc {
                            what: "PostRoomCreate",
                            status,
                        })?,
                ],
            ),
            Some(n) => {
                let item = PostEventsItem {
                    event: Some(post_events_item::Event::RoomCreate(self.request.clone())),
                };
                let results = self
                    .client
                    .post_events(vec![item; n])
                    .await
                    .map_err(|status| Error::Rpc {
                        what: "PostEvents",
                        status,
                    })?;
                if results.len() != n {
                    return Err(Error::Answer(format!(
                        "PostEvents of {n} events answered {} results",
                        results.len()
                    )));
                }
                ("PostEvents", results)
            }
        };
        if let Some(wrong) = accepted.iter().find(|a| a.subscribed_apps != self.apps) {
            return Err(Error::Answer(format!(
                "{what} expected {} subscribed apps, got {wrong:?}",
                self.apps
            )));
        }
        Ok(())
    }
}
