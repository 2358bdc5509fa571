#!/usr/bin/perl
# proto-tests/perl_dbd_test.pl — Perl DBI with DBD::MariaDB (and DBD::mysql for non-UTF-8 character
# sets) through dbrouter, compared with shard1's master directly.
#
# Both drivers are XS wrappers of MariaDB Connector/C (libmariadb), the C library most other
# language bindings use too: its handshake, its compression, its binary protocol
# (mariadb_server_prepare=1: COM_STMT_PREPARE / EXECUTE with typed parameters) and the drivers'
# client-side placeholders (the default). DBD::MariaDB always talks utf8mb4 (it refuses other
# network character sets), so latin1, cp1251 and koi8r connections are made with DBD::mysql,
# whose handshake takes the character set of a defaults file and which passes statement and
# error bytes untouched. Each check runs typical application code through the router and the
# same code directly against the master (as the same `app` account the router's sessions act
# as), and compares both with each other AND with a known expected value:
#   connect with a database; queries over every common column type with the column
#   definitions the driver exposes; server-side prepared statements with typed parameters;
#   errors; transactions (AutoCommit off, begin_work, commit, rollback) on global and sharded
#   tables; last_insert_id from the right shard; a JSON column created through the router;
#   protocol compression (mariadb_compression=1: the same answers, a 17 MiB value both ways);
#   latin1, cp1251 and koi8r connections (a table whose name, column and values are non-ASCII
#   in that encoding, used with bare names, the exact bytes of the error about a missing
#   non-ASCII table, rows of the sharded table); multi-statements; ping; execute_array (DBI's
#   batch) and a 1000-row multi-row INSERT; values of a few MiB; query timeouts (SET STATEMENT
#   max_statement_time, the driver's read timeout); KILL QUERY of $dbh->{mariadb_thread_id}
#   (the greeting's id is CONNECTION_ID()); the router's own SHOW DBROUTER ROUTE FOR; and that
#   rows of the sharded table `posts` land on the shard the route names.
# Not exposed by these drivers, so not checked: COM_CHANGE_USER, connection pools.
# A check given { todo => 'reason' } reports an expected difference as "ok … # TODO" (and fails once
# it passes); none is marked now.
#
# Needs the variables of `eval "$(scripts/dev-cluster env)"` (scripts/test exports them):
#   DBR_ROUTER     host:port of the router       (user DBR_APP_USER / DBR_APP_PASSWORD, default app / app-secret)
#   DBR_S1_MASTER  host:port of shard1's master  (compared as the app account; fixtures made as
#                                                 DBR_ADMIN_USER / DBR_ADMIN_PASSWORD, default
#                                                 dbrouter_admin / admin-secret)
#   DBR_S2_MASTER  host:port of shard2's master  (the sharded table `posts` lives on both masters)
#   DBR_APP_DB     database of the client account (default app)
# and Debian's libdbd-mariadb-perl and libdbd-mysql-perl (installed by scripts/dev-cluster up).
# Run:
#   perl proto-tests/perl_dbd_test.pl [CHECK-NAME-SUBSTRING ...]
# To check the script itself against bare MariaDB, point DBR_ROUTER at DBR_S1_MASTER and set
# DBR_APP_USER/DBR_APP_PASSWORD to an account on it (scripts/test does this with DBR_TEST_DIRECT=1;
# the router-only checks are then skipped, and every user "lives" on shard1).
# DBR_PERL_FAIL_FAST=1 stops at the first failed check; DBR_PERL_CHECK_TIMEOUT (seconds, default
# 120) bounds every check, and every connection has 120 s read/write timeouts.
#
# Fixtures live in database `perl_proto` (utf8mb4), dropped and re-created directly on both
# masters at the start. Output: one line per check, then "N passed, N failed"; the exit status is
# non-zero when any check failed.
use strict;
use warnings;
use utf8;

use DBI qw(:sql_types);
use Data::Dumper ();
use Digest::MD5 ();
use Digest::SHA qw(sha1_hex);
use Encode ();
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);

binmode STDOUT, ':encoding(UTF-8)';
$| = 1;

sub bail {
    print "FAIL - $_[0]\n0 passed, 1 failed\n";
    exit 1;
}

eval { require DBD::MariaDB; 1 } or bail("cannot load DBD::MariaDB ($@); install Debian's libdbd-mariadb-perl");

sub env_addr {
    my ($name) = @_;
    my $value = $ENV{$name} or bail("$name is not set: run through scripts/test or eval \"\$(scripts/dev-cluster env)\"");
    my ($host, $port) = $value =~ /^(.*):(\d+)$/ or bail("$name=$value is not host:port");
    return { host => $host, port => $port, text => $value };
}

my $ROUTER = env_addr('DBR_ROUTER');
my $S1 = env_addr('DBR_S1_MASTER');
my $S2 = env_addr('DBR_S2_MASTER');
my $APP_USER = $ENV{DBR_APP_USER} // 'app';
my $APP_PASSWORD = $ENV{DBR_APP_PASSWORD} // 'app-secret';
my $APP_DB = $ENV{DBR_APP_DB} // 'app';
my $ADMIN_USER = $ENV{DBR_ADMIN_USER} // 'dbrouter_admin';
my $ADMIN_PASSWORD = $ENV{DBR_ADMIN_PASSWORD} // 'admin-secret';
my $FAIL_FAST = ($ENV{DBR_PERL_FAIL_FAST} // '') eq '1';
my $CHECK_TIMEOUT = $ENV{DBR_PERL_CHECK_TIMEOUT} // 120;
# No router in between (scripts/test DBR_TEST_DIRECT=1): router-only checks are skipped.
my $NO_ROUTER = ($ENV{DBR_TEST_DIRECT} // '') eq '1' || $ROUTER->{text} eq $S1->{text};

my $DB = 'perl_proto';    # fixture database, created directly on both masters
my $MIB = 1024 * 1024;
my $WORK = tempdir('dbr-perl.XXXXXX', TMPDIR => 1, CLEANUP => 1);

# --- assertions ---------------------------------------------------------------------------------

sub fail_check { die { check => $_[0] } }

# Every defined scalar as a string (DBI may hand out 42 or '42' for the same value).
sub canon {
    my ($v) = @_;
    return [map { canon($_) } @$v] if ref $v eq 'ARRAY';
    return { map { ($_ => canon($v->{$_})) } keys %$v } if ref $v eq 'HASH';
    return defined $v ? "$v" : undef;
}

sub dump_of {
    my ($value) = @_;
    $value = canon($value);
    local $Data::Dumper::Indent = 0;
    local $Data::Dumper::Sortkeys = 1;
    local $Data::Dumper::Useqq = 1;
    local $Data::Dumper::Terse = 1;
    return Data::Dumper::Dumper($value);
}

sub show {
    my ($value, $limit) = @_;
    $limit //= 300;
    if (defined $value && !ref $value && length($value) > $limit) {
        my $bytes = utf8::is_utf8($value) ? Encode::encode('UTF-8', $value) : $value;
        return sprintf('<%d chars, sha1 %s>', length($value), sha1_hex($bytes));
    }
    my $text = dump_of($value);
    return length($text) <= $limit ? $text : substr($text, 0, $limit) . '... (' . length($text) . ' chars)';
}

sub expect { fail_check($_[1]) unless $_[0] }

sub expect_eq {
    my ($what, $got, $want) = @_;
    fail_check("$what: got " . show($got) . ', expected ' . show($want)) if dump_of($got) ne dump_of($want);
}

# Router and direct agree (the caller also checks the value itself).
sub expect_same {
    my ($what, $via_router, $via_direct) = @_;
    fail_check("$what differs: router " . show($via_router) . ', direct ' . show($via_direct))
        if dump_of($via_router) ne dump_of($via_direct);
}

# --- connections --------------------------------------------------------------------------------

# connect_to(ADDR, driver => 'MariaDB'|'mysql', user =>, password =>, database =>, dsn => {...}, attrs => {...})
sub connect_to {
    my ($addr, %o) = @_;
    my $driver = $o{driver} // 'MariaDB';
    my $p = $driver eq 'MariaDB' ? 'mariadb' : 'mysql';
    my %dsn = (
        host => $addr->{host}, port => $addr->{port},
        "${p}_connect_timeout" => 10, "${p}_read_timeout" => 120, "${p}_write_timeout" => 120,    # no call may hang the suite
        %{ $o{dsn} // {} },
    );
    my $database = exists $o{database} ? $o{database} : $APP_DB;
    $dsn{database} = $database if defined $database;
    my $dsn = "DBI:$driver:" . join(';', map {"$_=$dsn{$_}"} sort keys %dsn);
    return DBI->connect($dsn, $o{user} // $APP_USER, $o{password} // $APP_PASSWORD,
        { RaiseError => 1, PrintError => 0, AutoCommit => 1, %{ $o{attrs} // {} } });
}

sub router { connect_to($ROUTER, @_) }
sub direct { connect_to($S1, @_) }
sub direct_admin { my $addr = shift; connect_to($addr, user => $ADMIN_USER, password => $ADMIN_PASSWORD, database => undef, @_) }

# both(\%options, sub { my ($r, $d) = @_; ... }): the same connection options through the router and directly.
sub both {
    my ($opts, $code) = @_;
    my $r = router(%$opts);
    my $d = direct(%$opts);
    my @out = eval { $code->($r, $d) };
    my $err = $@;
    $_->disconnect for grep { $_ && $_->{Active} } $r, $d;
    die $err if $err;
    return wantarray ? @out : $out[0];
}

# [err, state, errstr] of what CODE raises; a failed check when it raises nothing.
sub error_of {
    my ($code, $what) = @_;
    my $ok = eval { $code->(); 1 };
    if ($ok) { fail_check(($what // 'the call') . ': no error raised, expected one') }
    die $@ if ref $@ eq 'HASH';
    return [$DBI::err, $DBI::state, $DBI::errstr];
}

sub rows { my ($dbh, $sql, @bind) = @_; return $dbh->selectall_arrayref($sql, undef, @bind) }

sub scalar_of {
    my ($dbh, $sql, @bind) = @_;
    my $rows = rows($dbh, $sql, @bind);
    expect(@$rows == 1 && @{ $rows->[0] } == 1, "$sql: expected one value, got " . show($rows));
    return $rows->[0][0];
}

# Rows and what the driver tells of the columns of a statement's result.
sub result_of {
    my ($dbh, $sql, $bind, $attrs) = @_;
    my $sth = $dbh->prepare($sql, $attrs // {});
    if (ref $bind eq 'CODE') { $bind->($sth); $sth->execute } else { $sth->execute(@{ $bind // [] }) }
    my $meta = { map { ($_ => $sth->{$_}) } qw(NAME TYPE PRECISION SCALE NULLABLE mariadb_type mariadb_type_name
        mariadb_is_blob mariadb_is_key mariadb_is_num mariadb_is_pri_key mariadb_length mariadb_max_length mariadb_table) };
    my $rows = $sth->fetchall_arrayref;
    return { rows => $rows, meta => $meta };
}

# --- routing ------------------------------------------------------------------------------------

my %route;

# The shard and master the router places a user on (everything is shard1 without a router).
sub route_of {
    my ($userid) = @_;
    return { shard => 'shard1', master => $S1->{text} } if $NO_ROUTER;
    unless ($route{$userid}) {
        my $r = router();
        my $row = $r->selectrow_hashref("SHOW DBROUTER ROUTE FOR $userid");
        $r->disconnect;
        expect($row && $row->{userid} eq $userid, "SHOW DBROUTER ROUTE FOR $userid: " . show($row));
        $route{$userid} = { shard => $row->{shard}, master => $row->{master} };
    }
    return $route{$userid};
}

sub master_addr { my ($text) = @_; return $text eq $S1->{text} ? $S1 : $text eq $S2->{text} ? $S2 : env_addr('DBR_S2_MASTER') }

# Users 1000.. by shard: { shard1 => [...], shard2 => [...] }, N each (shard2 empty without a router).
sub users_by_shard {
    my ($n) = @_;
    my %out = (shard1 => [], shard2 => []);
    for (my $u = 1000; $u < 1400; $u++) {
        last if @{ $out{shard1} } >= $n && ($NO_ROUTER || @{ $out{shard2} } >= $n);
        my $shard = route_of($u)->{shard};
        push @{ $out{$shard} }, $u if $out{$shard} && @{ $out{$shard} } < $n;
    }
    expect(@{ $out{shard1} } == $n, "found " . @{ $out{shard1} } . " users on shard1");
    expect($NO_ROUTER || @{ $out{shard2} } == $n, "found " . @{ $out{shard2} } . " users on shard2");
    return \%out;
}

# Every posts row matching WHERE sits on the master its user's route names, and nowhere else.
sub expect_posts_where_routed {
    my ($what, $where, $want_rows) = @_;
    my %want = (shard1 => [], shard2 => []);
    push @{ $want{ route_of($_->[0])->{shard} } }, $_ for @$want_rows;
    for my $pair (['shard1', $S1], ['shard2', $S2]) {
        my ($shard, $addr) = @$pair;
        my $d = direct_admin($addr, database => $DB);
        my $got = rows($d, "SELECT userid, body FROM posts $where ORDER BY userid, body");
        $d->disconnect;
        my @want = sort { $a->[0] <=> $b->[0] || $a->[1] cmp $b->[1] } @{ $want{$shard} };
        expect_eq("$what: rows on ${shard}'s master", [map { [0 + $_->[0], $_->[1]] } @$got], [map { [0 + $_->[0], $_->[1]] } @want]);
    }
}

# --- checks -------------------------------------------------------------------------------------

my @CHECKS;
sub check { push @CHECKS, { name => $_[0], code => $_[1], %{ $_[2] // {} } } }

my $UNICODE = 'héllo wörld — 日本語 — 🦀';
my $TEXT_VALUE = "line1\nline2\ttab \\ backslash 'quote' \"dq\" \x00nul";
my $BIN_VALUE = "\x00\xff\x7f\x80\x00'\\\n\r\x1a";
my $JSON_DOC = '{"name": "ü 🦀", "tags": ["a", "b"], "nested": {"n": 1, "f": 2.5, "t": true, "z": null}}';

my $TYPES_DDL = <<"SQL";
CREATE TABLE $DB.types (
    id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED, d DECIMAL(30,10), f DOUBLE, s VARCHAR(100),
    t TEXT, b VARBINARY(64), dt DATETIME(6), da DATE, tm TIME(6), y YEAR, bt BIT(10),
    e ENUM('a','b','ü'), st SET('x','y','z'), js JSON, uu UUID
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
SQL
my $POSTS_DDL = "CREATE TABLE $DB.posts (id INT AUTO_INCREMENT PRIMARY KEY, userid BIGINT UNSIGNED NOT NULL,"
    . " body VARCHAR(200) NOT NULL, meta JSON NULL, KEY (userid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

check('fixtures: database perl_proto (utf8mb4) with its tables on shard1, the sharded table posts on both masters', sub {
    for my $addr ($S1, $S2) {
        my $c = direct_admin($addr);
        $c->do($_) for "DROP DATABASE IF EXISTS $DB", "CREATE DATABASE $DB CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            # Sessions act as the client's own account at the database: app needs the grant.
            "GRANT ALL PRIVILEGES ON $DB.* TO 'app'\@'%'", $POSTS_DDL;
        $c->disconnect;
    }
    my $c = direct_admin($S1);
    $c->do($_) for $TYPES_DDL,
        "CREATE TABLE $DB.tx (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB",
        "CREATE TABLE $DB.errs (id INT PRIMARY KEY, small TINYINT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE $DB.many (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE $DB.blobs (id INT PRIMARY KEY, t LONGTEXT, b LONGBLOB) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
    my $sth = $c->prepare("INSERT INTO $DB.types VALUES
        (1, ?, ?, ?, ?, ?, ?, ?, '9999-12-31 23:59:59.999999', '1000-01-01', '-838:59:59.000000', 2155,
         b'1111111111', 'ü', 'x,z', ?, '123e4567-e89b-12d3-a456-426655440000'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 0, 0, 0, -0.0, '', '', '', '1970-01-01 00:00:00', '2020-02-29', '00:00:00.000001', 1901, b'0',
         'a', '', '[]', '00000000-0000-0000-0000-000000000000')");
    $sth->bind_param(1, '-9223372036854775808');
    $sth->bind_param(2, '18446744073709551615');
    $sth->bind_param(3, '-12345678901234567890.1234567891');
    $sth->bind_param(4, '1.7976931348623157e308');
    $sth->bind_param(5, $UNICODE);
    $sth->bind_param(6, $TEXT_VALUE);
    $sth->bind_param(7, $BIN_VALUE, SQL_VARBINARY);
    $sth->bind_param(8, $JSON_DOC);
    $sth->execute;
    expect_eq('rows in perl_proto.types', scalar_of($c, "SELECT COUNT(*) FROM $DB.types"), 3);
    $c->disconnect;
});

check('preflight: the router accepts app\'s login (database app) and answers SELECT 1; same server version as direct', sub {
    both({}, sub {
        my ($r, $d) = @_;
        expect_eq('SELECT 1 through the router', scalar_of($r, 'SELECT 1'), 1);
        expect_same('mariadb_serverinfo', $r->{mariadb_serverinfo}, $d->{mariadb_serverinfo});
        expect_same('mariadb_protoinfo', $r->{mariadb_protoinfo}, $d->{mariadb_protoinfo});
        expect($r->{mariadb_serverinfo} =~ /MariaDB/, "mariadb_serverinfo $r->{mariadb_serverinfo}");
    });
});

check('SHOW DBROUTER ROUTE FOR (a result set the router answers itself): shard, master, and column definitions that make sense', sub {
    return if $NO_ROUTER;
    my $r = router();
    my $res = result_of($r, 'SHOW DBROUTER ROUTE FOR 1000');
    $r->disconnect;
    expect_eq('column names', $res->{meta}{NAME}, [qw(userid shard master reason key_hash vnode_hash)]);
    expect($res->{rows}[0][1] =~ /^shard[12]$/, 'shard ' . show($res->{rows}[0]));
    # utf8mb4 VARCHAR of 1024 bytes, as the router means to describe its columns.
    expect_eq('column length (mariadb_length) of userid', $res->{meta}{mariadb_length}[0], 1024);
});

my $SESSION_VARS = 'SELECT DATABASE(), CURRENT_USER(), @@character_set_client, @@character_set_connection,'
    . ' @@character_set_results, @@collation_connection, @@autocommit';

check('connect with database perl_proto: session database, account, character set and collation as direct', sub {
    both({ database => $DB }, sub {
        my ($r, $d) = @_;
        my $got = rows($r, $SESSION_VARS);
        expect_same('session variables', $got, rows($d, $SESSION_VARS));
        expect_eq('session variables', $got, [[$DB, "$APP_USER\@%", 'utf8mb4', 'utf8mb4', 'utf8mb4', 'utf8mb4_unicode_ci', 1]]);
    });
});

check('SELECT over every common column type (client-side placeholders): values and column definitions as direct', sub {
    both({ database => $DB }, sub {
        my ($r, $d) = @_;
        my $sql = 'SELECT * FROM types WHERE id >= ? ORDER BY id';
        my $got = result_of($r, $sql, [1]);
        my $want = result_of($d, $sql, [1]);
        expect_same('column definitions', $got->{meta}, $want->{meta});
        expect_same("row $_", $got->{rows}[$_ - 1], $want->{rows}[$_ - 1]) for 1 .. 3;
        expect_eq('row count', scalar @{ $got->{rows} }, 3);
        my %one;
        @one{ @{ $got->{meta}{NAME} } } = @{ $got->{rows}[0] };
        expect_eq('row 1', [@one{qw(i u d s t b dt tm y bt e st uu)}],
            ['-9223372036854775808', '18446744073709551615', '-12345678901234567890.1234567891', $UNICODE, $TEXT_VALUE, $BIN_VALUE,
             '9999-12-31 23:59:59.999999', '-838:59:59.000000', 2155, "\x03\xff", 'ü', 'x,z', '123e4567-e89b-12d3-a456-426655440000']);
        expect_eq('row 1 JSON column (text)', $one{js}, $JSON_DOC);
        expect_eq('row 2 (all NULL but id)', [grep {defined} @{ $got->{rows}[1] }], [2]);
    });
});

check('server-side prepared statements (mariadb_server_prepare=1): typed parameters, one statement executed 3 times, as direct', sub {
    both({ database => $DB, dsn => { mariadb_server_prepare => 1 } }, sub {
        my ($r, $d) = @_;
        my $sql = 'SELECT id, i, u, d, s, b, dt, js, ? AS p_int, ? AS p_str, ? AS p_null, ? AS p_bin FROM types WHERE id <= ? ORDER BY id';
        my $bind = sub {
            my ($sth) = @_;
            $sth->bind_param(1, 42, SQL_INTEGER);
            $sth->bind_param(2, 'ü🦀', SQL_VARCHAR);
            $sth->bind_param(3, undef, SQL_VARCHAR);
            $sth->bind_param(4, "\x00\xff", SQL_VARBINARY);
            $sth->bind_param(5, 3, SQL_INTEGER);
        };
        my $got = result_of($r, $sql, $bind);
        my $want = result_of($d, $sql, $bind);
        expect_same('column definitions', $got->{meta}, $want->{meta});
        expect_same('rows', $got->{rows}, $want->{rows});
        expect_eq('row 1', [@{ $got->{rows}[0] }[2, 4, 8 .. 11]], ['18446744073709551615', $UNICODE, 42, 'ü🦀', undef, "\x00\xff"]);
        my @runs;
        for my $conn ($r, $d) {
            my $sth = $conn->prepare('SELECT id, s, ? + 1 AS next FROM types WHERE id = ?');
            my @out = ($sth->{NUM_OF_PARAMS});
            for my $id (1, 3, 2) {
                $sth->execute($id * 10, $id);
                push @out, $sth->fetchall_arrayref;
            }
            push @out, scalar_of($conn, 'SELECT 7');
            push @runs, \@out;
        }
        expect_same('one statement, three executions', $runs[0], $runs[1]);
        expect_eq('three executions', $runs[0], [2, [[1, $UNICODE, 11]], [[3, '', 31]], [[2, undef, 21]], 7]);
    });
});

check('server errors (1146, 1064, 1062, 1264, 1364, 1644, 1054) identical to direct, client- and server-side prepared; the session goes on', sub {
    my @statements = (
        ['SELECT * FROM perl_nosuchtable', 1146],
        ['SELEKT 1', 1064],
        ['INSERT INTO errs (id, small) VALUES (1, 1), (1, 2)', 1062],
        ['INSERT INTO errs (id, small) VALUES (2, 1000)', 1264],
        ['INSERT INTO errs (id) VALUES (3)', 1364],
        ["SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure ü 🦀'", 1644],
        ['SELECT nosuchcolumn FROM errs', 1054],
    );
    for my $server_prepare (0, 1) {
        both({ database => $DB, dsn => { mariadb_server_prepare => $server_prepare } }, sub {
            my ($r, $d) = @_;
            $d->do('DELETE FROM errs');
            for my $st (@statements) {
                my ($sql, $code) = @$st;
                next if $server_prepare && $code == 1644;    # SIGNAL cannot be prepared
                my $err_d = error_of(sub { $d->prepare($sql)->execute });
                my $err_r = error_of(sub { $r->prepare($sql)->execute });
                expect_eq("$sql (server_prepare=$server_prepare): direct error code", $err_d->[0], $code);
                expect_same("$sql (server_prepare=$server_prepare): error", $err_r, $err_d);
                expect_eq("$sql: SELECT 1 afterwards", scalar_of($r, 'SELECT 1'), 1);
            }
            expect_eq('rows in errs (every INSERT failed)', scalar_of($d, 'SELECT COUNT(*) FROM errs'), 0);
        });
    }
});

check('transactions: AutoCommit off + rollback leaves nothing, commit is visible directly; begin_work/commit with AutoCommit on', sub {
    my $sel = 'SELECT id, v FROM tx ORDER BY id';
    my $r = router(database => $DB, attrs => { AutoCommit => 0 });
    my $d = direct(database => $DB);
    $r->do('DELETE FROM tx');
    $r->commit;
    $r->do("INSERT INTO tx VALUES (1, 'rolled back')");
    $r->do('INSERT INTO tx VALUES (?, ?)', undef, 2, 'rolled back too');
    expect_eq('router sees its own uncommitted rows', scalar @{ rows($r, $sel) }, 2);
    expect_eq('direct does not see them', rows($d, $sel), []);
    $r->rollback;
    expect_eq('router after rollback', rows($r, $sel), []);
    $r->do('INSERT INTO tx VALUES (?, ?)', undef, 3, 'committed');
    expect_eq('direct before commit', rows($d, $sel), []);
    $r->commit;
    expect_eq('direct after commit', rows($d, $sel), [[3, 'committed']]);
    $r->{AutoCommit} = 1;
    expect_eq('@@autocommit after AutoCommit = 1', scalar_of($r, 'SELECT @@autocommit'), 1);
    $r->begin_work;
    $r->do('INSERT INTO tx VALUES (?, ?)', undef, 4, 'begin_work');
    expect_eq('@@in_transaction inside begin_work', scalar_of($r, 'SELECT @@in_transaction'), 1);
    $r->rollback;
    $r->begin_work;
    $r->do('INSERT INTO tx VALUES (?, ?)', undef, 5, 'begin_work');
    $r->commit;
    expect_eq('direct after begin_work/commit', rows($d, $sel), [[3, 'committed'], [5, 'begin_work']]);
    $_->disconnect for $r, $d;
});

check('sharded posts: literals, client-side and server-side placeholders for users of both shards land on their route\'s master; last_insert_id is that shard\'s', sub {
    my $users = users_by_shard(3);
    my @all = (@{ $users->{shard1} }, @{ $users->{shard2} });
    my (@want, %ids);
    for my $server_prepare (0, 1) {
        my $r = router(database => $DB, dsn => { mariadb_server_prepare => $server_prepare });
        for my $n (0 .. $#all) {
            my $u = $all[$n];
            my $body = "sp$server_prepare n$n";
            if ($n % 2) {
                $r->do("INSERT INTO posts (userid, body) VALUES ($u, '$body')");
            } else {
                $r->do('INSERT INTO posts (body, userid) VALUES (?, ?)', undef, $body, $u);
            }
            push @want, [$u, $body];
            $ids{"$u/$body"} = $r->last_insert_id(undef, undef, 'posts', 'id');
            # AUTO_INCREMENT ids are per shard: shard n hands out n, n+16, n+32, ... (scripts/dev-cluster).
            my ($shard_no) = route_of($u)->{shard} =~ /(\d+)$/;
            expect_eq("insert id of user $u modulo 16 (shard$shard_no)", $ids{"$u/$body"} % 16, 0 + $shard_no) unless $NO_ROUTER;
            my $back = rows($r, 'SELECT id, body FROM posts WHERE userid = ? AND body = ?', $u, $body);
            expect_eq("user $u reads its row back", $back, [[$ids{"$u/$body"}, $body]]);
        }
        $r->disconnect;
    }
    expect_posts_where_routed('inserted rows', 'WHERE userid IN (' . join(',', @all) . ')', \@want);
    unless ($NO_ROUTER) {
        expect(route_of($users->{shard1}[0])->{master} ne route_of($users->{shard2}[0])->{master}, 'users of both shards on one master');
    }
});

check('sharded transaction: writes of one user with AutoCommit off, rollback then commit, on that user\'s shard only', sub {
    my $users = users_by_shard(1);
    for my $u (@{ $users->{shard1} }, @{ $users->{shard2} }) {
        my $r = router(database => $DB, attrs => { AutoCommit => 0 });
        $r->do('DELETE FROM posts WHERE userid = ?', undef, $u);
        $r->commit;
        $r->do('INSERT INTO posts (userid, body) VALUES (?, ?)', undef, $u, 'tx rolled back');
        $r->rollback;
        $r->do('INSERT INTO posts (userid, body) VALUES (?, ?)', undef, $u, 'tx one');
        $r->do("INSERT INTO posts (userid, body) VALUES ($u, 'tx two')");
        $r->commit;
        $r->disconnect;
        expect_posts_where_routed("user $u", "WHERE userid = $u", [[$u, 'tx one'], [$u, 'tx two']]);
    }
});

check('a JSON column: CREATE TABLE through the connection, JSON text bound as a parameter comes back the same, as direct', sub {
    my $doc2 = '{"list": [1, 2.5, null, "ü"], "deep": {"a": {"b": {"c": [true, false]}}}}';
    both({ database => $DB }, sub {
        my ($r, $d) = @_;
        $r->do('DROP TABLE IF EXISTS docs');
        $r->do('CREATE TABLE docs (id INT PRIMARY KEY, doc JSON NOT NULL, note VARCHAR(20)) ENGINE=InnoDB');
        $r->do('INSERT INTO docs VALUES (?, ?, ?)', undef, 1, $JSON_DOC, 'param');
        $r->do(q{INSERT INTO docs VALUES (2, ?, 'param'), (3, '"just a string"', 'scalar'), (4, '[]', 'array')}, undef, $doc2);
        my @got;
        for my $conn ($r, $d) {
            push @got, [
                result_of($conn, 'SELECT id, doc, note FROM docs ORDER BY id'),
                result_of($conn, 'SELECT id, doc FROM docs WHERE id = ?', [2], { mariadb_server_prepare => 1 }),
                rows($conn, q{SELECT JSON_VALUE(doc, '$.name'), JSON_TYPE(doc), JSON_LENGTH(doc) FROM docs WHERE id = 1}),
            ];
        }
        expect_same('JSON results (rows and column definitions)', $got[0], $got[1]);
        expect_eq('docs', [map { $_->[1] } @{ $got[0][0]{rows} }], [$JSON_DOC, $doc2, '"just a string"', '[]']);
        expect_eq('server-side prepared', $got[0][1]{rows}, [[2, $doc2]]);
        expect_eq('JSON functions', $got[0][2], [['ü 🦀', 'OBJECT', 3]]);
    });
    my $users = users_by_shard(1);
    for my $u (@{ $users->{shard1} }, @{ $users->{shard2} }) {
        my $meta = qq({"user": $u, "prefs": {"theme": "dark", "langs": ["de", "ü"]}});
        my $r = router(database => $DB);
        $r->do('INSERT INTO posts (userid, body, meta) VALUES (?, ?, ?)', undef, $u, 'with json', $meta);
        expect_eq("posts.meta of user $u through the router",
            rows($r, q{SELECT meta, JSON_VALUE(meta, '$.prefs.theme') FROM posts WHERE userid = ? AND body = 'with json'}, $u), [[$meta, 'dark']]);
        $r->disconnect;
        my $d = connect_to(master_addr(route_of($u)->{master}), database => $DB);
        expect_eq("posts.meta of user $u directly on its master", rows($d, q{SELECT meta FROM posts WHERE userid = ? AND body = 'with json'}, $u), [[$meta]]);
        $d->disconnect;
    }
});

sub compressed_answers {
    my ($c) = @_;
    return [
        result_of($c, 'SELECT * FROM types ORDER BY id'),
        result_of($c, 'SELECT id, s, js FROM types WHERE id < ? ORDER BY id', [3], { mariadb_server_prepare => 1 }),
        result_of($c, 'SELECT seq, REPEAT(CHAR(65 + seq % 26), seq % 300) AS pad FROM seq_1_to_5000'),
        error_of(sub { $c->do('SELECT * FROM perl_nosuchtable') }),
        scalar_of($c, "SELECT SHA1(REPEAT('compress me ', 200000))"),
    ];
}

check('mariadb_compression=1 (CLIENT_COMPRESS): the same answers as direct compressed and as uncompressed; a 17 MiB value both ways', sub {
    my %got;
    for my $case (['router', $ROUTER, 1], ['direct', $S1, 1], ['router plain', $ROUTER, 0]) {
        my ($name, $addr, $compress) = @$case;
        my $c = connect_to($addr, database => $DB, dsn => { mariadb_compression => $compress });
        $got{$name} = compressed_answers($c);
        $c->disconnect;
    }
    expect_same('answers compressed', $got{router}, $got{direct});
    expect_same('answers compressed vs uncompressed through the router', $got{router}, $got{'router plain'});
    expect_eq('5000 rows', scalar @{ $got{router}[2]{rows} }, 5000);
    my $big = join '', map { pack('N', int(rand(2**32))) } 1 .. 17 * $MIB / 4;
    for my $case (['router', $ROUTER], ['direct', $S1]) {
        my ($name, $addr) = @$case;
        for my $server_prepare (0, 1) {
            my $c = connect_to($addr, database => $DB, dsn => { mariadb_compression => 1, mariadb_server_prepare => $server_prepare });
            my $sth = $c->prepare('REPLACE INTO blobs (id, b) VALUES (?, ?)');
            $sth->bind_param(1, 17, SQL_INTEGER);
            $sth->bind_param(2, $big, SQL_BLOB);
            $sth->execute;
            my $back = scalar_of($c, 'SELECT b FROM blobs WHERE id = 17');
            expect_eq("$name, server_prepare=$server_prepare: 17 MiB blob read back compressed: length", length($back), length($big));
            expect_eq("$name, server_prepare=$server_prepare: 17 MiB blob read back compressed: sha1", sha1_hex($back), sha1_hex($big));
            expect_eq("$name: SHA1() by the server", scalar_of($c, 'SELECT SHA1(b) FROM blobs WHERE id = 17'), sha1_hex($big));
            $c->disconnect;
        }
    }
});

# A DBD::mysql connection whose handshake asks for CHARSET (from a defaults file); statements,
# values and errors are bytes in that character set.
sub charset_conn {
    my ($addr, $charset, %o) = @_;
    my $cnf = "$WORK/$charset.cnf";
    unless (-e $cnf) {
        open my $fh, '>', $cnf or die "$cnf: $!";
        print $fh "[client]\ndefault-character-set=$charset\n";
        close $fh;
    }
    return connect_to($addr, driver => 'mysql', database => $DB,
        dsn => { mysql_read_default_file => $cnf, %{ $o{dsn} // {} } });
}

# A table whose name, column and values are non-ASCII in CHARSET, made and filled through the
# router in a CHARSET connection, read back through the router and directly; the exact bytes of
# the error about a missing non-ASCII table; rows of the sharded posts for a user of each shard.
# The table is created with backticked names (as schema tools write them), everything else uses
# bare names.
sub charset_check {
    my ($charset, $table, $column, $values, $missing) = @_;
    eval { require DBD::mysql; 1 } or fail_check("cannot load DBD::mysql ($@); install Debian's libdbd-mysql-perl");
    my $enc = { latin1 => 'iso-8859-1', cp1251 => 'cp1251', koi8r => 'koi8-r' }->{$charset};
    my $b = sub { my $s = $_[0]; Encode::encode($enc, $s, Encode::FB_CROAK | Encode::LEAVE_SRC) };
    my ($t, $c) = ($b->($table), $b->($column));
    my @v = map { $b->($_) } @$values;
    my $probe = 'SELECT @@character_set_client, @@character_set_connection, @@character_set_results';
    my $users = users_by_shard(1);
    my @users = (@{ $users->{shard1} }, @{ $users->{shard2} });
    for my $server_prepare (0, 1) {
        my $r = charset_conn($ROUTER, $charset, dsn => { mysql_server_prepare => $server_prepare });
        my $d = charset_conn($S1, $charset, dsn => { mysql_server_prepare => $server_prepare });
        expect_same('character set variables', rows($r, $probe), rows($d, $probe));
        expect_eq('character set variables', rows($r, $probe), [[$charset, $charset, $charset]]);
        if (!$server_prepare) {
            $r->do("DROP TABLE IF EXISTS `$t`");
            $r->do("CREATE TABLE `$t` (id INT PRIMARY KEY, `$c` VARCHAR(60)) CHARACTER SET $charset");
            $r->do("INSERT INTO $t (id, $c) VALUES (1, '$v[0]')");
            $r->do("INSERT INTO $t (id, $c) VALUES (?, ?)", undef, 2, $v[1]);
        } else {
            $r->do("INSERT INTO $t (id, $c) VALUES (?, ?)", undef, 3, $v[2]);
        }
        my $sel = "SELECT id, $c, HEX($c) FROM $t ORDER BY id";
        my ($got, $want) = (result_of($r, $sel), result_of($d, $sel));
        expect_same("rows and column definitions of the $charset table", $got, $want);
        my $n = $server_prepare ? 3 : 2;
        expect_eq("values read back through the router (server_prepare=$server_prepare)", [map { $_->[1] } @{ $got->{rows} }], [@v[0 .. $n - 1]]);
        expect_eq("HEX() of the first value (stored in $charset)", $got->{rows}[0][2], uc unpack('H*', $v[0]));
        expect_eq('column name', $got->{meta}{NAME}[1], $c);
        my @tables = (rows($r, "SHOW TABLES LIKE '$t'"), rows($d, "SHOW TABLES LIKE '$t'"));
        expect_same('SHOW TABLES LIKE', $tables[0], $tables[1]);
        expect_eq('SHOW TABLES LIKE', $tables[0], [[$t]]);
        my $m = $b->($missing);
        for my $sql ("SELECT * FROM $m WHERE id = ?", "SELECT * FROM `$m` WHERE id = ?") {
            my $err_d = error_of(sub { $d->prepare($sql)->execute(1) });
            my $err_r = error_of(sub { $r->prepare($sql)->execute(1) });
            expect_eq('direct: missing table (bytes)', $err_d, [1146, '42S02', "Table '$DB.$m' doesn't exist"]);
            expect_same('missing non-ASCII table: error (bytes)', $err_r, $err_d);
        }
        # The sharded table: a non-ASCII value in this character set for a user of each shard.
        for my $u (@users) {
            $r->do("INSERT INTO posts (userid, body) VALUES ($u, '$charset $server_prepare $v[0]')");
            $r->do('INSERT INTO posts (userid, body) VALUES (?, ?)', undef, $u, "$charset $server_prepare $v[1]");
            expect_eq("posts of user $u read back through the router",
                rows($r, 'SELECT body FROM posts WHERE userid = ? AND body LIKE ? ORDER BY id', $u, "$charset $server_prepare %"),
                [["$charset $server_prepare $v[0]"], ["$charset $server_prepare $v[1]"]]);
        }
        $_->disconnect for $r, $d;
    }
    expect_posts_where_routed("$charset rows of posts", 'WHERE userid IN (' . join(',', @users) . ") AND body LIKE '$charset %'",
        [map { my $u = $_; map { [$u, "$charset $_"] } "0 $values->[0]", "0 $values->[1]", "1 $values->[0]", "1 $values->[1]" } @users]);
    # What the server stored, read as utf8mb4 by DBD::MariaDB directly.
    my $d = direct(database => $DB);
    expect_eq("the $charset table read as utf8mb4 directly", rows($d, "SELECT `$column` FROM `$table` ORDER BY id"), [map { [$_] } @$values]);
    $d->disconnect;
}

check("latin1 (DBD::mysql): a table `café_ñü` with non-ASCII values (bare names), read back, the missing-table error's bytes, sharded rows, as direct", sub {
    charset_check('latin1', 'café_ñü', 'naïve', ['Crème brûlée à la carte', 'Ærøskøbing ß µ ¿', 'ÿ þ ð × ÷'], 'absent_ñandú');
});

check("cp1251 (DBD::mysql): a table `заказы` with Cyrillic values (bare names), read back, the missing-table error's bytes, sharded rows, as direct", sub {
    charset_check('cp1251', 'заказы', 'имя', ['Привет, мир — ёЁ', 'Съешь же ещё этих мягких булок', '№ 5 «кавычки» €'], 'нет_такой_таблицы');
});

check("koi8r (DBD::mysql): a table `товары` with Cyrillic values (bare names), read back, the missing-table error's bytes, sharded rows, as direct", sub {
    charset_check('koi8r', 'товары', 'название', ['Щука, ёж и ЪЬ', 'Широкая электрификация', 'юг - север'], 'нет_такой');
});

check('mariadb_multi_statements=1: more_results() over 4 results, then the next query, as direct', sub {
    both({ dsn => { mariadb_multi_statements => 1 } }, sub {
        my ($r, $d) = @_;
        my @got;
        for my $conn ($r, $d) {
            my $sth = $conn->prepare("SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; DO 1; SELECT 3 AS d UNION ALL SELECT 4");
            $sth->execute;
            my @sets;
            do { push @sets, [$sth->{NUM_OF_FIELDS} ? ($sth->{NAME}, $sth->fetchall_arrayref) : ('no result set')] } while ($sth->more_results);
            push @got, [\@sets, scalar_of($conn, 'SELECT 42')];
        }
        expect_same('result sets', $got[0], $got[1]);
        expect_eq('result sets', $got[0], [[[['a'], [[1]]], [['b', 'c'], [['two', undef]]], ['no result set'], [['d'], [[3], [4]]]], 42]);
    });
});

check('ping() (COM_PING) keeps the session; CONNECTION_ID() stays', sub {
    my $r = router();
    $r->do('SET @perl_ping = 7');
    my $id = scalar_of($r, 'SELECT CONNECTION_ID()');
    expect($r->ping, 'ping() returned false') for 1 .. 3;
    expect_eq('@perl_ping after pings', scalar_of($r, 'SELECT @perl_ping'), 7);
    expect_eq('CONNECTION_ID() after pings', scalar_of($r, 'SELECT CONNECTION_ID()'), $id);
    $r->disconnect;
    expect(!$r->ping, 'ping() after disconnect returned true');
});

check('execute_array() of 500 rows and a 1000-row multi-row INSERT with placeholders, content as direct', sub {
    my @rows = map { [$_, "name-$_ ü", sprintf('%.2f', $_ * 7 / 100)] } 1 .. 1000;
    my $summary = "SELECT COUNT(*), SUM(id), SUM(amount), MD5(GROUP_CONCAT(name ORDER BY id SEPARATOR '|')) FROM many";
    my %got;
    for my $case (['router', \&router], ['direct', \&direct]) {
        my ($name, $connect) = @$case;
        for my $server_prepare (0, 1) {
            my $c = $connect->(database => $DB, dsn => { mariadb_server_prepare => $server_prepare });
            $c->do('SET SESSION group_concat_max_len = 1048576');
            $c->do('DELETE FROM many');
            my $sth = $c->prepare('INSERT INTO many (id, name, amount) VALUES (?, ?, ?)');
            my @status;
            my $n = $sth->execute_array({ ArrayTupleStatus => \@status },
                [map { $_->[0] } @rows[0 .. 499]], [map { $_->[1] } @rows[0 .. 499]], [map { $_->[2] } @rows[0 .. 499]]);
            my $values = join ', ', ('(?, ?, ?)') x 500;
            my $m = $c->do("INSERT INTO many (id, name, amount) VALUES $values", undef, map {@$_} @rows[500 .. 999]);
            $got{"$name $server_prepare"} = [$n, scalar(grep { $_ == 1 } @status), 0 + $m, rows($c, $summary)];
            $c->disconnect;
        }
    }
    my $md5 = Digest::MD5::md5_hex(Encode::encode('UTF-8', join '|', map { $_->[1] } @rows));
    for my $sp (0, 1) {
        expect_same("execute_array and multi-row INSERT (server_prepare=$sp)", $got{"router $sp"}, $got{"direct $sp"});
        expect_eq("execute_array and multi-row INSERT (server_prepare=$sp)", $got{"router $sp"}, [500, 500, 500, [[1000, 500500, '35035.00', $md5]]]);
    }
});

check('large values: 5 MiB text and 5 MiB blob through client-side and server-side placeholders, read back, sha1 as direct', sub {
    my $text = ('ü🦀 ' x int(5 * $MIB / 9)) . "'\\\"\x00";
    my $blob = join '', map { pack('N', int(rand(2**32))) } 1 .. 5 * $MIB / 4;
    my %got;
    for my $case (['router', \&router], ['direct', \&direct]) {
        my ($name, $connect) = @$case;
        for my $server_prepare (0, 1) {
            my $c = $connect->(database => $DB, dsn => { mariadb_server_prepare => $server_prepare });
            $c->do('DELETE FROM blobs WHERE id IN (5, 6)');
            $c->do('INSERT INTO blobs (id, t) VALUES (5, ?)', undef, $text);
            my $sth = $c->prepare('INSERT INTO blobs (id, b) VALUES (?, ?)');
            $sth->bind_param(1, 6, SQL_INTEGER);
            $sth->bind_param(2, $blob, SQL_BLOB);
            $sth->execute;
            my $back = rows($c, 'SELECT t, b FROM blobs WHERE id IN (?, ?) ORDER BY id', 5, 6);
            $got{"$name $server_prepare"} = [$back->[0][0] eq $text ? 'text ok' : 'text differs', sha1_hex($back->[1][1]),
                rows($c, 'SELECT id, LENGTH(t), SHA1(t), LENGTH(b), SHA1(b) FROM blobs WHERE id IN (5, 6) ORDER BY id')];
            $c->disconnect;
        }
    }
    my $text_sha = sha1_hex(Encode::encode('UTF-8', $text));
    for my $sp (0, 1) {
        expect_same("values and SHA1() by the server (server_prepare=$sp)", $got{"router $sp"}, $got{"direct $sp"});
        expect_eq("values and SHA1() by the server (server_prepare=$sp)", $got{"router $sp"}, ['text ok', sha1_hex($blob),
            [[5, length(Encode::encode('UTF-8', $text)), $text_sha, undef, undef], [6, undef, undef, length($blob), sha1_hex($blob)]]]);
    }
});

check('query timeouts: SET STATEMENT max_statement_time FOR -> 1969 as direct; the driver\'s read timeout -> 2013 as direct, then new logins work', sub {
    my $users = users_by_shard(1);
    both({ database => $DB }, sub {
        my ($r, $d) = @_;
        my $sql = 'SET STATEMENT max_statement_time = 0.5 FOR SELECT SLEEP(5)';
        my $err_d = error_of(sub { $d->do($sql) });
        my $t0 = time;
        my $err_r = error_of(sub { $r->do($sql) });
        my $took = time - $t0;
        expect_eq('direct', $err_d, [1969, '70100', 'Query execution was interrupted (max_statement_time exceeded)']);
        expect_same('SET STATEMENT max_statement_time = 0.5 FOR SELECT SLEEP(5)', $err_r, $err_d);
        expect($took < 4, sprintf('interrupted after %.1fs, not ~0.5s', $took));
        expect_eq('SELECT 1 afterwards', scalar_of($r, 'SELECT 1'), 1);
        for my $u (@{ $users->{shard1} }, @{ $users->{shard2} }) {
            my $err = error_of(sub { $r->do("SET STATEMENT max_statement_time = 0.5 FOR SELECT SLEEP(5), COUNT(*) FROM posts WHERE userid = $u") });
            expect_eq("the same for a statement of user $u", $err, $err_d);
        }
    });
    my @got;
    for my $addr ($ROUTER, $S1) {
        my $c = connect_to($addr, dsn => { mariadb_read_timeout => 1 });
        my $t0 = time;
        my $err = error_of(sub { $c->do('SELECT SLEEP(6)') });
        my $took = time - $t0;
        push @got, [$err->[0], $err->[1], $c->ping ? 'alive' : 'gone'];
        expect($took < 5.5, sprintf('the read timeout of 1 s ended the call after %.1fs', $took));
        my $again = connect_to($addr);
        expect_eq('a new login afterwards: SELECT 1', scalar_of($again, 'SELECT 1'), 1);
        $again->disconnect;
    }
    expect_same('read timeout', $got[0], $got[1]);
    expect_eq('read timeout', $got[1][0], 2013);
});

check('KILL QUERY <$dbh->{mariadb_thread_id}> from a second connection interrupts a running SLEEP (async do) -> the same error as direct', sub {
    my @got;
    for my $connect (\&router, \&direct) {
        my $a = $connect->();
        my $b = $connect->();
        my $id = $a->{mariadb_thread_id};
        $a->do('SELECT SLEEP(20)', { mariadb_async => 1 });
        sleep 0.5;
        $b->do("KILL QUERY $id");
        my $t0 = time;
        sleep 0.05 until $a->mariadb_async_ready || time - $t0 > 15;
        my $res = eval { $a->mariadb_async_result };
        push @got, [defined $res ? "result $res" : [$DBI::err, $DBI::state, $DBI::errstr], scalar_of($a, 'SELECT 1')];
        $_->disconnect for $a, $b;
    }
    expect_same('the killed statement, then SELECT 1', $got[0], $got[1]);
    expect_eq('the killed statement (SLEEP returns 1 when interrupted)', $got[1], [[1317, '70100', 'Query execution was interrupted'], 1])
        unless !ref $got[1][0];
    expect(ref $got[1][0] || $got[1][0] eq 'result 1', 'direct: ' . show($got[1]));
});

check('the greeting\'s connection id ($dbh->{mariadb_thread_id}) is CONNECTION_ID()', sub {
    both({}, sub {
        my ($r, $d) = @_;
        expect_eq('direct: mariadb_thread_id vs CONNECTION_ID()', $d->{mariadb_thread_id}, scalar_of($d, 'SELECT CONNECTION_ID()'));
        expect_eq('router: mariadb_thread_id vs CONNECTION_ID()', $r->{mariadb_thread_id}, scalar_of($r, 'SELECT CONNECTION_ID()'));
    });
});

# --- runner -------------------------------------------------------------------------------------

sub main {
    my @words = @_;
    my @selected = grep {
        my $name = $_->{name};
        !@words || $name =~ /^(fixtures|preflight)/ || grep { index($name, $_) >= 0 } @words
    } @CHECKS;
    my $mysql_version = eval { require DBD::mysql; $DBD::mysql::VERSION } // 'missing';
    printf "# perl_dbd_test.pl: DBI %s, DBD::MariaDB %s, DBD::mysql %s, router %s (user %s) vs direct %s / %s (user %s)%s\n",
        $DBI::VERSION, $DBD::MariaDB::VERSION, $mysql_version, $ROUTER->{text}, $APP_USER, $S1->{text}, $S2->{text}, $APP_USER,
        $NO_ROUTER ? ' [no router: router-only checks skipped]' : '';
    my ($passed, $failed, $todo) = (0, 0, 0);
    my $n = 0;
    for my $c (@selected) {
        $n++;
        my $t0 = time;
        # An unsafe SIGALRM also interrupts a call blocked inside the C library.
        my $action = POSIX::SigAction->new(sub { die { check => "timed out after ${CHECK_TIMEOUT}s" } });
        $action->safe(0);
        POSIX::sigaction(POSIX::SIGALRM(), $action);
        alarm $CHECK_TIMEOUT;
        my $ok = eval { $c->{code}->(); 1 };
        alarm 0;
        my $err = $@;
        if ($ok && $c->{todo}) {
            $failed++;
            printf "FAIL %2d - %s: passes now; remove its TODO (%s)\n", $n, $c->{name}, $c->{todo};
            next;
        }
        if ($ok) {
            $passed++;
            printf "ok   %2d - %s (%.2fs)\n", $n, $c->{name}, time - $t0;
            next;
        }
        my $what = ref $err eq 'HASH' ? $err->{check} : "unexpected error: $err";
        $what =~ s/\s+$//;
        if ($c->{todo}) {
            $todo++;
            $passed++;
            printf "ok   %2d - %s # TODO expected difference (%s): %s\n", $n, $c->{name}, $c->{todo}, $what;
            next;
        }
        $failed++;
        printf "FAIL %2d - %s: %s\n", $n, $c->{name}, $what;
        last if $FAIL_FAST || $c->{name} =~ /^(fixtures|preflight)/;    # everything after depends on it
    }
    print "# $todo expected difference(s) marked TODO\n" if $todo;
    print "$passed passed, $failed failed\n";
    return $failed == 0 && $passed == @selected ? 0 : 1;
}

exit main(@ARGV);
