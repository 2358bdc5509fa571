//! The ZooKeeper topology store: the znode layout (docs/topology.md), consistent reads of
//! the whole topology, compare-and-set writes (a multi that checks the znode versions it
//! read and bumps the version counter, so two operators can never overwrite each other),
//! and router registrations (ephemeral znodes).
//!
//! Layout under the root (e.g. `/dbrouter/dev`):
//! `version` (the counter), `topology`, `overrides/00` … `overrides/ff`, `routers/<id>`
//! (ephemeral), `locks/` (for operations that must run once).

use std::time::Duration;

use zookeeper_client as zk;

use super::{
    bucket_of, decode, encode, BucketDoc, MoveDoc, RouterDoc, RouterLease, Snapshot, TopologyDoc,
    TopologyError, VersionDoc, BUCKETS, SCHEMA,
};

/// Where the topology lives: ZooKeeper hosts and the root znode, and the digest identity
/// dbrouter authenticates as there (never shown: not in `Display`, redacted in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct ZkTarget {
    /// `host:port[,host:port…]`.
    pub hosts: String,
    /// Root path, e.g. `/dbrouter/dev`.
    pub root: String,
    /// `(user, password)` of ZooKeeper's digest scheme (`[topology] zk_user`).
    pub digest: Option<(String, String)>,
}

impl std::fmt::Debug for ZkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkTarget")
            .field("hosts", &self.hosts)
            .field("root", &self.root)
            .field("digest_user", &self.digest.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl ZkTarget {
    /// The ZooKeeper target of `[topology] source`, when the topology lives there, with
    /// the config's digest identity.
    pub fn of(config: &crate::config::TopologyConfig) -> Option<ZkTarget> {
        ZkTarget::parse(&config.source)
            .ok()
            .map(|t| t.with_digest(config))
    }

    /// This target with the config's digest identity (`[topology] zk_user`).
    pub fn with_digest(mut self, config: &crate::config::TopologyConfig) -> ZkTarget {
        self.digest = config.zk_digest();
        self
    }

    /// Parses `zk://host:port[,host:port…]/path` (`config::parse_zk_url`, which also checks
    /// `[topology] source` when the config is loaded).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (hosts, root) = crate::config::parse_zk_url(url)?;
        Ok(ZkTarget {
            hosts: hosts.to_string(),
            root,
            digest: None,
        })
    }
}

impl std::fmt::Display for ZkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "zk://{}{}", self.hosts, self.root)
    }
}

/// Nodes created by an authenticated dbrouter: everything for its identity, reading for
/// anyone (monitoring, `zkCli.sh get`).
static OWNER_ALL_ANYONE_READ: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
];

/// A ZooKeeper client error as the topology store reports it.
pub(super) fn zk_err(e: impl std::fmt::Display) -> TopologyError {
    TopologyError::Zk(e.to_string())
}

/// A connected ZooKeeper topology store (cheap to clone: clones share the session).
#[derive(Clone)]
pub struct ZkStore {
    client: zk::Client,
    target: ZkTarget,
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The topology was created at version 1.
    Created,
    /// A topology existed already (at this version); nothing was changed.
    AlreadyInitialized(u64),
}

impl ZkStore {
    /// Connects (failing once no server answered, each tried for up to `timeout`: a node
    /// of an ensemble that accepts connections but never answers — frozen, or cut off —
    /// costs one `timeout`, and the client moves on to the next).
    pub async fn connect(
        target: &ZkTarget,
        session_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, TopologyError> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(timeout)
            .with_fail_eagerly();
        if let Some((user, password)) = &target.digest {
            connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
        }
        let connect = connector.connect(&target.hosts);
        let hosts = target.hosts.split(',').count().max(1) as u32;
        let overall = timeout.saturating_mul(hosts);
        let client = tokio::time::timeout(overall, connect)
            .await
            .map_err(|_| {
                TopologyError::Zk(format!(
                    "no ZooKeeper server at {} answered within {overall:?}",
                    target.hosts
                ))
            })?
            .map_err(zk_err)?;
        Ok(ZkStore {
            client,
            target: target.clone(),
        })
    }

    /// The ACL of every node dbrouter creates: with a digest identity, all permissions
    /// for it (the "auth" scheme: the identities this session authenticated as) and read
    /// for anyone; without one, everything for anyone (an open ZooKeeper).
    pub fn acls(&self) -> zk::Acls<'static> {
        if self.target.digest.is_some() {
            zk::Acls::new(&OWNER_ALL_ANYONE_READ)
        } else {
            zk::Acls::anyone_all()
        }
    }

    /// The underlying client (for watches and session state).
    pub fn client(&self) -> &zk::Client {
        &self.client
    }

    /// The target.
    pub fn target(&self) -> &ZkTarget {
        &self.target
    }

    /// The absolute path of a node under the root.
    pub fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.target.root)
    }

    /// Path of the version counter.
    pub fn version_path(&self) -> String {
        self.path("version")
    }

    fn bucket_path(&self, bucket: usize) -> String {
        self.path(&format!("overrides/{bucket:02x}"))
    }

    /// Creates the layout with this topology and these overrides, unless it exists.
    pub async fn init(
        &self,
        topology: &TopologyDoc,
        overrides: &[(Vec<u8>, String)],
    ) -> Result<InitOutcome, TopologyError> {
        topology.validate()?;
        if let Some((version, _)) = self.read_version().await? {
            return Ok(InitOutcome::AlreadyInitialized(version));
        }
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
        // Ancestors of the root (e.g. /dbrouter) may exist already.
        let mut prefix = String::new();
        for part in self.target.root.trim_start_matches('/').split('/') {
            prefix.push('/');
            prefix.push_str(part);
            match self.client.create(&prefix, b"", &persistent).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        let mut buckets = vec![
            BucketDoc {
                schema: SCHEMA,
                users: Default::default()
            };
            BUCKETS
        ];
        for (user, shard) in overrides {
            buckets[bucket_of(user)]
                .users
                .insert(String::from_utf8_lossy(user).into_owned(), shard.clone());
        }
        let snapshot = Snapshot {
            version: 1,
            topology: topology.clone(),
            buckets,
        };
        snapshot.validate()?;
        // Everything in one transaction: a concurrent init loses as a whole.
        let mut multi = self.client.new_multi_writer();
        let mut add = |path: String, data: Vec<u8>| {
            multi.add_create(&path, &data, &persistent).map_err(zk_err)
        };
        add(self.path("topology"), encode(topology))?;
        add(self.path("overrides"), Vec::new())?;
        for (i, b) in snapshot.buckets.iter().enumerate() {
            add(self.bucket_path(i), encode(b))?;
        }
        add(self.path("routers"), Vec::new())?;
        add(self.path("locks"), Vec::new())?;
        add(
            self.version_path(),
            encode(&VersionDoc {
                schema: SCHEMA,
                version: 1,
            }),
        )?;
        match multi.commit().await {
            Ok(_) => Ok(InitOutcome::Created),
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::NodeExists,
                ..
            }) => {
                let version = self.read_version().await?.map_or(0, |v| v.0);
                Ok(InitOutcome::AlreadyInitialized(version))
            }
            Err(e) => Err(zk_err(e)),
        }
    }

    /// The version counter and its znode version, or `None` before init.
    pub async fn read_version(&self) -> Result<Option<(u64, i32)>, TopologyError> {
        match self.client.get_data(&self.version_path()).await {
            Ok((data, stat)) => Ok(Some((
                decode::<VersionDoc>("version", &data)?.version,
                stat.version,
            ))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// The topology document and its znode version.
    pub async fn read_topology(&self) -> Result<(TopologyDoc, i32), TopologyError> {
        let (data, stat) =
            self.client
                .get_data(&self.path("topology"))
                .await
                .map_err(|e| match e {
                    zk::Error::NoNode => TopologyError::NotInitialized(self.target.to_string()),
                    e => zk_err(e),
                })?;
        let doc: TopologyDoc = decode("topology", &data)?;
        doc.validate()?;
        Ok((doc, stat.version))
    }

    /// One override bucket and its znode version.
    pub async fn read_bucket(&self, bucket: usize) -> Result<(BucketDoc, i32), TopologyError> {
        let (data, stat) = self
            .client
            .get_data(&self.bucket_path(bucket))
            .await
            .map_err(zk_err)?;
        Ok((
            decode(&format!("override bucket {bucket:02x}"), &data)?,
            stat.version,
        ))
    }

    /// Reads everything. The version counter is read first, in the same multi-read as the
    /// documents, so the snapshot is never labelled newer than its content.
    pub async fn read_all(&self) -> Result<Snapshot, TopologyError> {
        <Self as super::TopologyStore>::read_all(self).await
    }
}

impl super::TopologyStore for ZkStore {
    async fn read_all(&self) -> Result<Snapshot, TopologyError> {
        let mut reader = self.client.new_multi_reader();
        reader.add_get_data(&self.version_path()).map_err(zk_err)?;
        reader
            .add_get_data(&self.path("topology"))
            .map_err(zk_err)?;
        for i in 0..BUCKETS {
            reader.add_get_data(&self.bucket_path(i)).map_err(zk_err)?;
        }
        let results = reader.commit().await.map_err(zk_err)?;
        let mut data = Vec::with_capacity(results.len());
        for r in results {
            match r {
                zk::MultiReadResult::Data { data: d, .. } => data.push(d),
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                } => return Err(TopologyError::NotInitialized(self.target.to_string())),
                zk::MultiReadResult::Error { err } => return Err(zk_err(err)),
                _ => return Err(zk_err("unexpected multi-read result")),
            }
        }
        let version: VersionDoc = decode("version", &data[0])?;
        let topology: TopologyDoc = decode("topology", &data[1])?;
        let mut buckets = Vec::with_capacity(BUCKETS);
        for (i, d) in data[2..].iter().enumerate() {
            buckets.push(decode(&format!("override bucket {i:02x}"), d)?);
        }
        let snapshot = Snapshot {
            version: version.version,
            topology,
            buckets,
        };
        snapshot.validate()?;
        Ok(snapshot)
    }
}

impl ZkStore {
    /// Writes `node` (read at znode version `expected`) and bumps the counter, atomically.
    /// Returns the new topology version.
    async fn write_cas(
        &self,
        node: &str,
        data: Vec<u8>,
        expected: i32,
    ) -> Result<u64, TopologyError> {
        let (version, version_stat) = self
            .read_version()
            .await?
            .ok_or_else(|| TopologyError::NotInitialized(self.target.to_string()))?;
        let next = version + 1;
        let mut multi = self.client.new_multi_writer();
        multi
            .add_set_data(node, &data, Some(expected))
            .map_err(zk_err)?;
        multi
            .add_set_data(
                &self.version_path(),
                &encode(&VersionDoc {
                    schema: SCHEMA,
                    version: next,
                }),
                Some(version_stat),
            )
            .map_err(zk_err)?;
        match multi.commit().await {
            Ok(_) => Ok(next),
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::BadVersion,
                ..
            }) => Err(TopologyError::Conflict),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Replaces the topology document read at znode version `expected`.
    pub async fn write_topology(
        &self,
        topology: &TopologyDoc,
        expected: i32,
    ) -> Result<u64, TopologyError> {
        topology.validate()?;
        self.write_cas(&self.path("topology"), encode(topology), expected)
            .await
    }

    /// Places a user on a shard (or removes the override with `None`). Returns the new
    /// version, or `None` when nothing changed.
    pub async fn set_override(
        &self,
        canonical: &[u8],
        shard: Option<&str>,
    ) -> Result<Option<u64>, TopologyError> {
        let (topology, _) = self.read_topology().await?;
        if let Some(s) = shard {
            if !topology.shards.iter().any(|x| x.name == s) {
                return Err(TopologyError::Invalid {
                    what: "override".into(),
                    reason: format!("no shard is named {s:?}"),
                });
            }
        }
        let bucket = bucket_of(canonical);
        let (mut doc, expected) = self.read_bucket(bucket).await?;
        let user = String::from_utf8_lossy(canonical).into_owned();
        let changed = match shard {
            Some(s) => doc.users.insert(user, s.to_string()).as_deref() != Some(s),
            None => doc.users.remove(&user).is_some(),
        };
        if !changed {
            return Ok(None);
        }
        self.write_cas(&self.bucket_path(bucket), encode(&doc), expected)
            .await
            .map(Some)
    }

    /// Adds overrides to one bucket in one compare-and-set write (read again and retried
    /// when another writer got there first); a user who has an override already keeps it.
    /// Returns how many were added.
    pub async fn add_overrides(
        &self,
        bucket: usize,
        entries: &[(&[u8], &str)],
    ) -> Result<usize, TopologyError> {
        let mut attempts = 0;
        loop {
            let (mut doc, expected) = self.read_bucket(bucket).await?;
            let mut added = 0;
            for (user, shard) in entries {
                let user = String::from_utf8_lossy(user).into_owned();
                if let std::collections::btree_map::Entry::Vacant(e) = doc.users.entry(user) {
                    e.insert(shard.to_string());
                    added += 1;
                }
            }
            if added == 0 {
                return Ok(0);
            }
            match self
                .write_cas(&self.bucket_path(bucket), encode(&doc), expected)
                .await
            {
                Err(TopologyError::Conflict) if attempts < 10 => attempts += 1,
                Err(e) => return Err(e),
                Ok(_) => return Ok(added),
            }
        }
    }

    /// Creates (or, for our own session, updates) this router's ephemeral registration.
    pub async fn register(&self, doc: &RouterDoc) -> Result<(), TopologyError> {
        let path = self.path(&format!("routers/{}", doc.id));
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(self.acls());
        match self.client.create(&path, &encode(doc), &ephemeral).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NodeExists) => {
                // A node of an earlier session of ours may linger until it expires: replace it.
                let _ = self.client.delete(&path, None).await;
                self.client
                    .create(&path, &encode(doc), &ephemeral)
                    .await
                    .map(drop)
                    .map_err(zk_err)
            }
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Updates the registration's content (applied version).
    pub async fn update_registration(&self, doc: &RouterDoc) -> Result<(), TopologyError> {
        let path = self.path(&format!("routers/{}", doc.id));
        match self.client.set_data(&path, &encode(doc), None).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NoNode) => self.register(doc).await,
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Removes this router's registration and lease at once (a router that stops).
    pub async fn deregister(&self, id: &str) -> Result<(), TopologyError> {
        for rel in [format!("routers/{id}"), format!("leases/{id}")] {
            match self.client.delete(&self.path(&rel), None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(())
    }

    /// Writes (creates or renews) a router's lease.
    pub async fn write_lease(&self, lease: &RouterLease) -> Result<(), TopologyError> {
        let path = self.path(&format!("leases/{}", lease.id));
        let data = encode(lease);
        match self.client.set_data(&path, &data, None).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(zk_err(e)),
        }
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
        self.ensure_node("leases").await?;
        match self.client.create(&path, &data, &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Every lease with its last renewal (ZooKeeper's modification time, ms since the
    /// Unix epoch).
    pub async fn leases(&self) -> Result<Vec<(RouterLease, i64)>, TopologyError> {
        let names = match self.client.list_children(&self.path("leases")).await {
            Ok(names) => names,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(zk_err(e)),
        };
        let mut out = Vec::new();
        for name in names {
            match self
                .client
                .get_data(&self.path(&format!("leases/{name}")))
                .await
            {
                Ok((data, stat)) => {
                    out.push((decode(&format!("lease {name}"), &data)?, stat.mtime))
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(out)
    }

    /// Deletes a lease (of a router known to be gone for good).
    pub async fn delete_lease(&self, id: &str) -> Result<(), TopologyError> {
        match self
            .client
            .delete(&self.path(&format!("leases/{id}")), None)
            .await
        {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Every registered router.
    pub async fn routers(&self) -> Result<Vec<RouterDoc>, TopologyError> {
        let names = self
            .client
            .list_children(&self.path("routers"))
            .await
            .map_err(zk_err)?;
        let mut out = Vec::new();
        for name in names {
            match self
                .client
                .get_data(&self.path(&format!("routers/{name}")))
                .await
            {
                Ok((data, _)) => out.push(decode(&format!("router {name}"), &data)?),
                Err(zk::Error::NoNode) => {} // left meanwhile
                Err(e) => return Err(zk_err(e)),
            }
        }
        out.sort_by(|a: &RouterDoc, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Creates the persistent node `rel` (a parent of records created on demand:
    /// `moves`, `leases`, `wakeups`) unless it exists.
    async fn ensure_node(&self, rel: &str) -> Result<(), TopologyError> {
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
        match self.client.create(&self.path(rel), b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// A user's move record and its znode version, if there is one.
    pub async fn read_move(&self, user: &str) -> Result<Option<(MoveDoc, i32)>, TopologyError> {
        self.read_record("moves", user).await
    }

    /// Writes a move record: created when `expected` is `None`, else a compare-and-set on
    /// that znode version. Returns the new znode version. Routers never read these: the
    /// topology version is not bumped.
    pub async fn write_move(
        &self,
        doc: &MoveDoc,
        expected: Option<i32>,
    ) -> Result<i32, TopologyError> {
        self.write_record("moves", &doc.user, doc, expected).await
    }

    /// A record `<dir>/<name>` (moves, jobs) and its znode version, if there is one.
    pub(super) async fn read_record<T: for<'de> serde::Deserialize<'de> + super::HasSchema>(
        &self,
        dir: &str,
        name: &str,
    ) -> Result<Option<(T, i32)>, TopologyError> {
        match self
            .client
            .get_data(&self.path(&format!("{dir}/{name}")))
            .await
        {
            Ok((data, stat)) => Ok(Some((
                decode(&format!("{dir}/{name}"), &data)?,
                stat.version,
            ))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Writes a record `<dir>/<name>`: created when `expected` is `None` (Conflict if it
    /// exists), else a compare-and-set on that znode version. Returns the new version.
    pub(super) async fn write_record<T: serde::Serialize>(
        &self,
        dir: &str,
        name: &str,
        doc: &T,
        expected: Option<i32>,
    ) -> Result<i32, TopologyError> {
        let path = self.path(&format!("{dir}/{name}"));
        let data = encode(doc);
        match expected {
            Some(v) => match self.client.set_data(&path, &data, Some(v)).await {
                Ok(stat) => Ok(stat.version),
                Err(zk::Error::BadVersion) => Err(TopologyError::Conflict),
                Err(e) => Err(zk_err(e)),
            },
            None => {
                let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
                self.ensure_node(dir).await?;
                match self.client.create(&path, &data, &persistent).await {
                    Ok(_) => Ok(0),
                    Err(zk::Error::NodeExists) => Err(TopologyError::Conflict),
                    Err(e) => Err(zk_err(e)),
                }
            }
        }
    }

    /// Who holds the lock `locks/<name>` (its holder's text), if anyone does.
    pub async fn lock_owner(&self, name: &str) -> Result<Option<String>, TopologyError> {
        match self
            .client
            .get_data(&self.path(&format!("locks/{name}")))
            .await
        {
            Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// The names of the records in `dir` (none if it does not exist yet).
    pub(super) async fn record_names(&self, dir: &str) -> Result<Vec<String>, TopologyError> {
        match self.client.list_children(&self.path(dir)).await {
            Ok(names) => Ok(names),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Every move record.
    pub async fn moves(&self) -> Result<Vec<MoveDoc>, TopologyError> {
        let names = self.record_names("moves").await?;
        let mut out = Vec::new();
        for name in names {
            if let Some((doc, _)) = self.read_move(&name).await? {
                out.push(doc);
            }
        }
        out.sort_by_key(|m: &MoveDoc| m.started_ms);
        Ok(out)
    }

    /// The flip of a move, in one transaction: the user's override names `target`, the
    /// hold is lifted, the move record (read at `move_expected`) becomes `doc`, and the
    /// version counter is bumped — all or nothing. Returns the new topology version.
    pub async fn flip_move(&self, doc: &MoveDoc, move_expected: i32) -> Result<u64, TopologyError> {
        let (mut topology, topology_expected) = self.read_topology().await?;
        topology.holds.remove(&doc.user);
        topology.validate()?;
        let bucket = bucket_of(doc.user.as_bytes());
        let (mut overrides, bucket_expected) = self.read_bucket(bucket).await?;
        overrides.users.insert(doc.user.clone(), doc.target.clone());
        let (version, version_stat) = self
            .read_version()
            .await?
            .ok_or_else(|| TopologyError::NotInitialized(self.target.to_string()))?;
        let mut multi = self.client.new_multi_writer();
        multi
            .add_set_data(
                &self.path("topology"),
                &encode(&topology),
                Some(topology_expected),
            )
            .map_err(zk_err)?;
        multi
            .add_set_data(
                &self.bucket_path(bucket),
                &encode(&overrides),
                Some(bucket_expected),
            )
            .map_err(zk_err)?;
        multi
            .add_set_data(
                &self.path(&format!("moves/{}", doc.user)),
                &encode(doc),
                Some(move_expected),
            )
            .map_err(zk_err)?;
        multi
            .add_set_data(
                &self.version_path(),
                &encode(&VersionDoc {
                    schema: SCHEMA,
                    version: version + 1,
                }),
                Some(version_stat),
            )
            .map_err(zk_err)?;
        match multi.commit().await {
            Ok(_) => Ok(version + 1),
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::BadVersion,
                ..
            }) => Err(TopologyError::Conflict),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Queues a wake-up of a hibernated user (`<root>/wakeups/<user>`; idempotent).
    pub async fn request_wakeup(&self, user: &str) -> Result<(), TopologyError> {
        let persistent = zk::CreateMode::Persistent.with_acls(self.acls());
        self.ensure_node("wakeups").await?;
        let path = self.path(&format!("wakeups/{user}"));
        match self.client.create(&path, b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// The users waiting for a wake-up.
    pub async fn wakeups(&self) -> Result<Vec<String>, TopologyError> {
        match self.client.list_children(&self.path("wakeups")).await {
            Ok(users) => Ok(users),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Removes a user's wake-up request (done).
    pub async fn delete_wakeup(&self, user: &str) -> Result<(), TopologyError> {
        match self
            .client
            .delete(&self.path(&format!("wakeups/{user}")), None)
            .await
        {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(zk_err(e)),
        }
    }

    /// Writes raw bytes to a node (tests and repairs; bypasses validation on purpose).
    pub async fn write_raw(&self, rel: &str, data: &[u8]) -> Result<(), TopologyError> {
        self.client
            .set_data(&self.path(rel), data, None)
            .await
            .map(drop)
            .map_err(zk_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = ZkTarget::parse("zk://127.0.0.1:2181,127.0.0.1:2182/dbrouter/dev").unwrap();
        assert_eq!(t.hosts, "127.0.0.1:2181,127.0.0.1:2182");
        assert_eq!(t.root, "/dbrouter/dev");
        assert_eq!(
            t.to_string(),
            "zk://127.0.0.1:2181,127.0.0.1:2182/dbrouter/dev"
        );
        for bad in [
            "127.0.0.1:2181/x",
            "zk://127.0.0.1:2181",
            "zk:///x",
            "zk://h:1/",
            "zk://h:1/a//b",
        ] {
            assert!(ZkTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
