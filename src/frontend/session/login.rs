//! The connection phase of a session, and its re-run by COM_CHANGE_USER: the greeting,
//! the TLS switch, the handshake response, authentication against the account (with the
//! plugin switch and the abuse limits), admission (TLS required, sessions per account),
//! the first backend login as the account the session acts as, and the OK that ends it.

use super::*;

pub(super) async fn connection_phase(
    client: &mut PacketConn<ClientIo<impl ClientStream>>,
    peer: SocketAddr,
    connection_id: u32,
    ctx: &SessionContext,
) -> Result<
    (
        SessionBackends,
        [u8; SCRAMBLE_LEN],
        ShardId,
        Dialect,
        AccountSession,
        String,
    ),
    End,
> {
    // The config as it is now (a reload later applies to the next login).
    let config = ctx.config.load_full();
    // Connections of one address still logging in are capped, before the greeting.
    let Some(_logging_in) = ctx.logins.begin(peer.ip()) else {
        let err = ClientError::TooManyLogins {
            max: config.limits.max_logins_per_address,
        };
        return Err(send_error(client, 0, err).await);
    };
    let scramble = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
    let method = config.default_auth_method();
    // CLIENT_SSL is offered only with a certificate to serve.
    let tls = ctx.tls.as_ref().and_then(|t| t.acceptor());
    let mut offered = offered_capabilities();
    if tls.is_some() {
        offered |= CapabilityFlags::CLIENT_SSL;
    }
    if config.server.compression {
        offered |= CapabilityFlags::CLIENT_COMPRESS;
    }
    // Metadata caching (MARIADB_CLIENT_CACHE_METADATA) lets the server leave out column
    // definitions a statement sent before: in transaction pooling a server statement is
    // shared by the sessions that prepared its text, and the definitions it sent another
    // session may not be those this client holds (`SELECT ? + ?` executed with other
    // types). Not offered then: every result carries its definitions.
    let mut mariadb_offered = ctx.mariadb_capabilities;
    if config.pool.mode == crate::config::PoolMode::Transaction {
        mariadb_offered.remove(MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA);
    }
    let hello = greeting(
        connection_id,
        &ctx.server_version,
        &scramble,
        offered,
        mariadb_offered,
        ctx.server_collation,
        method.plugin_name(),
    );
    client.queue(0, &hello);
    client.flush().await.map_err(End::ClientGone)?;

    let (mut seq, mut payload) = read_login_packet(client, 1).await?;
    if is_ssl_request(&payload) {
        // SSLRequest: the TLS handshake, then the handshake response over TLS.
        let Some(acceptor) = tls else {
            let err = ClientError::BadHandshake(
                "the client asked for TLS, which this router does not offer ([server.tls])".into(),
            );
            return Err(send_error(client, seq.wrapping_add(1), err).await);
        };
        if let Err(e) = client.start_tls(&acceptor).await {
            info!(error = %e, "TLS handshake failed");
            return Err(End::Closed("TLS handshake failed"));
        }
        (seq, payload) = read_login_packet(client, seq.wrapping_add(1)).await?;
    }
    let seq = seq.wrapping_add(1);
    if config.server.require_secure_transport && !client.is_tls() {
        return Err(send_error(
            client,
            seq,
            ClientError::InsecureTransport { account: None },
        )
        .await);
    }
    let mut login = match parse_handshake_response(&payload) {
        Ok(login) => login,
        Err(e @ LoginParseError::OldProtocol) => {
            return Err(send_error(client, seq, ClientError::AuthNotSupported(e.to_string())).await)
        }
        Err(e) => {
            return Err(send_error(client, seq, ClientError::BadHandshake(e.to_string())).await)
        }
    };
    // Compression is between the client and the router only: the backend connections
    // (and their pool keys) never carry it.
    let compress = login
        .capabilities
        .contains(CapabilityFlags::CLIENT_COMPRESS)
        && offered.contains(CapabilityFlags::CLIENT_COMPRESS);
    login.capabilities &= offered_capabilities();
    login.mariadb_capabilities &= mariadb_offered;
    let (seq, account, identity) = authenticate(client, ctx, &login, &scramble, seq, peer).await?;
    let account_session = admit(client, ctx, &account, seq).await?;

    // The first backend connection: on the global shard (another one while its master is
    // unreachable), which also checks the login and the database.
    let table = ctx.routing.load_full();
    let global = table.global_shard();
    let mut backends = SessionBackends::new(
        Arc::clone(&ctx.pools),
        config.pool.mode,
        config.timeouts.backend_read(),
        login_state(&login, identity),
    );
    let global =
        match super::failover_hold::login_connection(ctx, &mut backends, table, global).await {
            Ok((_, used)) => used,
            Err(failure) => return Err(send_failure(client, seq, failure).await),
        };
    // The global sql_mode and the login character set, as the login connection reads them.
    let dialect = backends.dialect(global).unwrap_or_default();
    let ok = login_ok(&mut backends, global, config.timeouts.backend_read()).await;
    // The login checked the database; a session with no state yet needs no backend
    // connection until its first statement. Idle clients (10 000 of them are normal) then
    // hold none, and the pool lends it to whoever needs it (in transaction pooling as it
    // is: it carries a fresh login's state).
    if backends.give_back(None).await.is_err() {
        backends.release_all(false);
    }
    backends.release_all(true);
    client.queue(seq, &ok);
    client.flush().await.map_err(End::ClientGone)?;
    if compress {
        client.start_compression();
    }
    debug!(user = ?login.user, db = ?login.database, compress, "client logged in");
    Ok((
        backends,
        scramble,
        global,
        dialect,
        account_session,
        account.name,
    ))
}

/// The OK that ends a login (or a COM_CHANGE_USER). With CLIENT_SESSION_TRACK and a
/// database, MariaDB's carries the schema as a session-state change (as its trackers are
/// configured): the router takes the very OK the login connection gives to COM_INIT_DB of
/// that database, which is those bytes. Otherwise a plain OK.
pub(super) async fn login_ok(
    backends: &mut SessionBackends,
    shard: ShardId,
    timeout: std::time::Duration,
) -> Vec<u8> {
    let plain = ok_packet(0, 0, SERVER_STATUS_AUTOCOMMIT, 0);
    let login = backends.login();
    let tracked = login
        .capabilities
        .contains(CapabilityFlags::CLIENT_SESSION_TRACK);
    let Some(db) = login.database.clone().filter(|_| tracked) else {
        return plain;
    };
    let format = backends.result_format();
    let Some(io) = backends.get(shard) else {
        return plain;
    };
    let mut cmd = vec![COM_INIT_DB];
    cmd.extend_from_slice(db.as_bytes());
    match exchange(io, &cmd, ResponseKind::Single, format, timeout).await {
        Ok(packets) => match packets.first() {
            Some(ok) if ok.first() == Some(&0x00) => ok.to_vec(),
            _ => plain,
        },
        Err(_) => {
            // Out of step: never lent to anyone again.
            backends.discard(shard);
            plain
        }
    }
}

/// After a successful authentication of `account`: refused if the account requires TLS
/// and the connection has none, or if it has `max_connections` sessions already.
pub(super) async fn admit(
    client: &mut PacketConn<ClientIo<impl ClientStream>>,
    ctx: &SessionContext,
    account: &Account,
    seq: u8,
) -> Result<AccountSession, End> {
    let user = account.name.as_str();
    if !client.is_tls() && account.require_tls {
        let account = Some(user.to_string());
        return Err(send_error(client, seq, ClientError::InsecureTransport { account }).await);
    }
    let max = account.max_connections;
    match ctx.logins.session(user, max) {
        Some(session) => Ok(session),
        None => {
            let err = ClientError::UserLimit {
                account: user.to_string(),
                max,
            };
            Err(send_error(client, seq, err).await)
        }
    }
}

/// Reads a packet of the connection phase that must carry sequence id `expected`.
pub(super) async fn read_login_packet(
    client: &mut PacketConn<ClientIo<impl ClientStream>>,
    expected: u8,
) -> Result<(u8, BytesMut), End> {
    match client
        .read_logical(HANDSHAKE_PACKET_LIMIT, Some(expected))
        .await
    {
        Ok(p) => Ok(p),
        Err(NetError::Closed) => Err(End::Closed("client left before the handshake")),
        Err(source) => {
            let limit = HANDSHAKE_PACKET_LIMIT;
            let failure = Failure::ClientPacket { limit, source };
            Err(send_failure(client, expected.wrapping_add(1), failure).await)
        }
    }
}

pub(super) fn login_state(login: &ClientLogin, identity: BackendIdentity) -> LoginState {
    LoginState {
        identity,
        capabilities: login.capabilities,
        mariadb_capabilities: login.mariadb_capabilities,
        collation: login.collation,
        database: login.database.clone(),
        attributes: login.attributes.clone(),
    }
}

/// Verifies the client's password, switching its plugin when needed. Returns the next
/// sequence id to send with, the account, and the MariaDB account its session acts as.
pub(super) async fn authenticate(
    client: &mut PacketConn<impl ClientStream>,
    ctx: &SessionContext,
    login: &ClientLogin,
    scramble: &[u8; SCRAMBLE_LEN],
    mut seq: u8,
    peer: SocketAddr,
) -> Result<(u8, Account, BackendIdentity), End> {
    let config = ctx.config.load_full();
    // After failed logins from this address (or of this account), every attempt waits
    // before its password is checked: the answer comes no sooner for the right one.
    let delay = ctx.logins.delay(peer.ip(), &login.user);
    if !delay.is_zero() {
        crate::metrics::login_delayed();
        tokio::time::sleep(delay).await;
    }
    let account = ctx.accounts.find(&login.user, peer.ip()).await;
    let creds = account.as_ref().and_then(|a| a.credentials.as_ref());
    // Acting as the client's own account at the database needs SHA1(password), which only
    // a mysql_native_password answer carries.
    let needs_native = account.as_ref().is_some_and(|a| {
        a.backend == BackendAccount::Own && creds.is_some_and(|c| !c.is_empty_password())
    });
    let client_method = match &login.plugin {
        Some(name) => AuthMethod::from_plugin_name(name),
        // Without CLIENT_PLUGIN_AUTH a 4.1 client answers with mysql_native_password.
        None => Some(AuthMethod::Native),
    };
    let usable = match (creds, client_method) {
        (Some(c), Some(m)) => {
            (c.supports(m) && (!needs_native || m == AuthMethod::Native)).then_some(m)
        }
        // Unknown account: verify with the client's method so the answer does not reveal
        // whether the account exists.
        (None, m) => m,
        (Some(_), None) => None,
    };
    let mut nonce = *scramble;
    let (method, token) = match usable {
        Some(m) => (m, login.auth_response.clone()),
        None => {
            if !login
                .capabilities
                .contains(CapabilityFlags::CLIENT_PLUGIN_AUTH)
            {
                let err = ClientError::AuthNotSupported(
                    "the account needs another authentication plugin and the client cannot switch plugins"
                        .into(),
                );
                return Err(send_error(client, seq, err).await);
            }
            let target = match creds {
                _ if needs_native => AuthMethod::Native,
                Some(c) => c.preferred_method(),
                None => config.default_auth_method(),
            };
            nonce = new_scramble().map_err(|e| End::Error(ClientError::Internal(e.to_string())))?;
            client.queue(seq, &auth_switch(target.plugin_name(), &nonce));
            client.flush().await.map_err(End::ClientGone)?;
            let expected = seq.wrapping_add(1);
            let (got, answer) = match client
                .read_logical(HANDSHAKE_PACKET_LIMIT, Some(expected))
                .await
            {
                Ok(p) => p,
                Err(source) => {
                    let limit = HANDSHAKE_PACKET_LIMIT;
                    let failure = Failure::ClientPacket { limit, source };
                    return Err(send_failure(client, seq.wrapping_add(2), failure).await);
                }
            };
            seq = got.wrapping_add(1);
            (target, answer.to_vec())
        }
    };
    let verified = match (&account, creds) {
        (Some(account), Some(creds)) if creds.verify(method, &nonce, &token) => {
            Some((account.clone(), creds))
        }
        _ => None,
    };
    let Some((account, creds)) = verified else {
        // Counted before the answer: a client that leaves without reading it still failed.
        ctx.logins.failed(peer.ip(), &login.user);
        let err = match account.and_then(|a| a.unsupported_plugin) {
            // A backend account whose plugin the router cannot check.
            Some(plugin) => ClientError::AuthNotSupported(format!(
                "the account uses {plugin} at the database, which dbrouter cannot verify; \
                 give it mysql_native_password (or a [[users]] entry)"
            )),
            None => ClientError::AccessDenied {
                user: login.user.clone(),
                host: peer.ip().to_string(),
                using_password: !token.is_empty(),
            },
        };
        return Err(send_error(client, seq, err).await);
    };
    ctx.logins.succeeded(peer.ip(), &login.user);
    let identity = match &account.backend {
        BackendAccount::Own => BackendIdentity {
            user: account.name.clone(),
            password: String::new(),
            // None for an account without a password (its answer is empty).
            password_sha1: creds.native_password_sha1(&nonce, &token),
            own: true,
        },
        BackendAccount::As { user, password } => BackendIdentity {
            user: user.clone(),
            password: password.clone(),
            password_sha1: None,
            own: false,
        },
    };
    if method == AuthMethod::CachingSha2 {
        // AuthMoreData(fast_auth_success): 0x01 then 0x03; the OK follows.
        seq = client.queue(seq, &[0x01, 0x03]);
    }
    Ok((seq, account, identity))
}
