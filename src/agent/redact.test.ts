import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isSecretName, redactArgv, redactPathParams, redactQuery, redactText, redactUrl, stripUserinfo } from './redact.js';

/** a command line as /proc shows it, redacted and joined */
const cmd = (...argv: string[]) => redactArgv(argv).join(' ');

describe('isSecretName', () => {
  const secret = [
    'token', 'access_token', 'oauth_token', 'X-Auth-Token', 'X-Amz-Security-Token', 'GITHUB_TOKEN', 'authtoken',
    'password', 'passwd', 'PassWord', 'PGPASSWORD', 'db.password', 'Dpassword', 'MYSQL_PWD', 'pwd', 'pass', 'passphrase',
    'secret', 'client_secret', 'AWS_SECRET_ACCESS_KEY',
    'key', 'api_key', 'api-key', 'apikey', 'apiKey', 'X-Api-Key', 'XApiKey', 'AWSAccessKeyId', 'accesskey', 'accesskeyid', 'privkey', 'private_key', 'passcode', 'Ocp-Apim-Subscription-Key',
    'auth', 'oauth', 'basicauth', 'Authorization', 'Proxy-Authorization',
    'session', 'sessionid', 'jsessionid', 'PHPSESSID', 'X-Session-Id',
    'Cookie', 'Set-Cookie', 'sig', 'signature', 'X-Amz-Signature', 'X-Amz-Credential', 'credentials', 'csrf', 'X-XSRF-TOKEN', 'jwt', 'bearer',
  ];
  const innocent = [
    // look-alikes: the secret word inside another word
    'keyboard', 'keyword', 'monkey', 'hotkey', 'author', 'authority', 'design', 'signal', 'passenger', 'compass', 'bypass',
    // ordinary names
    'page', 'port', 'user', 'username', 'host', 'q', 'sort', 'id', 'client_id', 'Content-Type', 'User-Agent', 'X-Request-Id', 'DATABASE_URL', '',
    // about a secret, not the secret: a file, a timeout, a type, a switch
    'password_file', '--password-file', 'DB_PASSWORD_FILE', 'passwordFile', 'session_timeout', 'token_type', 'auth-url', 'cookie-jar',
    'no-password', 'ask-pass', 'password-stdin', 'SECRET_NAME',
  ];
  for (const n of secret) it(`${n} is secret`, () => assert.equal(isSecretName(n), true));
  for (const n of innocent) it(`${n || '(empty)'} is not`, () => assert.equal(isSecretName(n), false));
});

describe('redactQuery', () => {
  const cases: [string, string][] = [
    ['a=1&api_key=xyz', 'a=1&api_key=REDACTED'],
    ['?access_token=abc.def&page=2', '?access_token=REDACTED&page=2'],
    ['password=hunter2&user=bob', 'password=REDACTED&user=bob'],
    ['passwd=1&pwd=2&PassWord=3', 'passwd=REDACTED&pwd=REDACTED&PassWord=REDACTED'],
    ['client_secret=s&sessionid=9&X-Amz-Signature=ff&X-Amz-Credential=AK/2024', 'client_secret=REDACTED&sessionid=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED'],
    ['sig=abc&auth=basic', 'sig=REDACTED&auth=REDACTED'],
    ['Authorization=Bearer%20x', 'Authorization=REDACTED'],
    // names are matched decoded
    ['access%5Ftoken=abc', 'access%5Ftoken=REDACTED'],
    ['my+secret=abc', 'my+secret=REDACTED'],
    // a value containing '=' is wholly replaced
    ['token=a=b=c&x=1', 'token=REDACTED&x=1'],
    // nothing secret: unchanged, same string; look-alike names stay
    ['q=shoes&size=42', 'q=shoes&size=42'],
    ['page=2&keyboard=1&author=me&design=flat&monkey=3', 'page=2&keyboard=1&author=me&design=flat&monkey=3'],
    ['token_type=bearer&session_timeout=30', 'token_type=bearer&session_timeout=30'],
    ['', ''],
    ['?', '?'],
    // no value to hide: kept as is
    ['token&debug', 'token&debug'],
    ['token=&x=1', 'token=&x=1'],
    // separators and empty parts kept
    ['a=1&&key=2&', 'a=1&&key=REDACTED&'],
    // a broken escape in a name does not throw
    ['%E0%A4%A=1&apikey=2', '%E0%A4%A=1&apikey=REDACTED'],
  ];
  for (const [q, want] of cases) {
    it(`${q || '(empty)'} -> ${want || '(empty)'}`, () => {
      assert.equal(redactQuery(q), want);
    });
  }

  it('never leaves a secret value behind', () => {
    const secret = 'S3CR3T-VALUE';
    for (const name of ['token', 'api_key', 'apiKey', 'SECRET', 'password', 'passwd', 'pwd', 'sig', 'signature', 'auth', 'session', 'credentials']) {
      const out = redactQuery(`x=1&${name}=${secret}&y=2`);
      assert.ok(!out.includes(secret), `${name}: ${out}`);
      assert.ok(out.startsWith('x=1&') && out.endsWith('&y=2'), out);
    }
  });
});

describe('redactUrl', () => {
  const cases: [string, string][] = [
    // user:password keeps the user; a lone userinfo is the credential itself
    ['https://alice:hunter2@example.com/p', 'https://alice:REDACTED@example.com/p'],
    ['https://ghp_0123456789abcdef@github.com/o/r.git', 'https://REDACTED@github.com/o/r.git'],
    ['https://sk_test_123:@api.stripe.com/v1', 'https://REDACTED@api.stripe.com/v1'],
    ['postgres://app:s3cret@db:5432/app?sslmode=require&password=x', 'postgres://app:REDACTED@db:5432/app?sslmode=require&password=REDACTED'],
    // an unencoded '/' in the password (curl accepts it) does not leave its tail in the path
    ['https://user:pa/ss@host/p?x=1', 'https://user:REDACTED@host/p?x=1'],
    // query, fragment (OAuth implicit flow) and ;path parameters
    ['http://h/p?token=abc&page=2', 'http://h/p?token=REDACTED&page=2'],
    ['https://app/cb#access_token=abc&state=xyz', 'https://app/cb#access_token=REDACTED&state=xyz'],
    ['http://h/app;jsessionid=ABC123/x?y=1', 'http://h/app;jsessionid=REDACTED/x?y=1'],
    // nothing secret
    ['http://h:8080/users/@me?page=2', 'http://h:8080/users/@me?page=2'],
    ['http://[::1]:8080/p?keyboard=1', 'http://[::1]:8080/p?keyboard=1'],
    ['http://h/a;v=1/b', 'http://h/a;v=1/b'],
    ['not a url', 'not a url'],
  ];
  for (const [u, want] of cases) it(`${u} -> ${want}`, () => assert.equal(redactUrl(u), want));

  it('path parameters and Host userinfo', () => {
    assert.equal(redactPathParams('/a;jsessionid=X;v=2/b'), '/a;jsessionid=REDACTED;v=2/b');
    assert.equal(redactPathParams('/plain/path'), '/plain/path');
    assert.equal(stripUserinfo('user:pw@example.com:8080'), 'example.com:8080');
    assert.equal(stripUserinfo('example.com'), 'example.com');
  });
});

describe('redactText', () => {
  const cases: [string, string][] = [
    // header lines, any secret-named header
    ['Authorization: Bearer abc.def.ghi', 'Authorization: REDACTED'],
    ['Proxy-Authorization: Basic dXNlcjpwYXNz', 'Proxy-Authorization: REDACTED'],
    ['Cookie: session=abc; theme=dark', 'Cookie: REDACTED'],
    ['Set-Cookie: sid=1; HttpOnly', 'Set-Cookie: REDACTED'],
    ['X-Api-Key: k', 'X-Api-Key: REDACTED'],
    ['X-Vault-Token:abc', 'X-Vault-Token:REDACTED'],
    ['Content-Type: application/json', 'Content-Type: application/json'],
    ['X-Keyboard-Layout: de', 'X-Keyboard-Layout: de'],
    // env-style assignments: the whole rest is the value, spaces included
    ['PGPASSWORD=a b c', 'PGPASSWORD=REDACTED'],
    ['FOO_TOKEN=x', 'FOO_TOKEN=REDACTED'],
    ['DB_PASSWORD_FILE=/run/secrets/db', 'DB_PASSWORD_FILE=/run/secrets/db'],
    ['DATABASE_URL=postgres://u:p@h/db', 'DATABASE_URL=postgres://u:REDACTED@h/db'],
    ['keyboard=1', 'keyboard=1'],
    // pairs inside text: a libpq conninfo, quoted values, a JSON body
    ["host=db user=me password='my secret' dbname=x", 'host=db user=me password=REDACTED dbname=x'],
    ['{"user": "bob", "password": "p\\"w"}', '{"user": "bob", "password": "REDACTED"}'],
    // a User-Agent with a URL and a pair in its comment; the ')' after a URL stays
    ['probe/1.0 (+http://bot:pw@example.com/about?token=t) session=s', 'probe/1.0 (+http://bot:REDACTED@example.com/about?token=REDACTED) session=REDACTED'],
    ['Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0', 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0'],
    // credentials by their scheme word; "basic authentication" is prose, not base64 of user:pass
    ['call with Bearer eyJhbGciOiJIUzI1NiJ9.e30.x', 'call with Bearer REDACTED'],
    ['Basic dXNlcjpwYXNz', 'Basic REDACTED'],
    ['uses basic authentication', 'uses basic authentication'],
    // userinfo without a scheme (curl -x); a Docker digest reference is not one
    ['user:pw@proxy.local:3128', 'user:REDACTED@proxy.local:3128'],
    ['nginx:1.25@sha256:0a1b2c3d4e5f', 'nginx:1.25@sha256:0a1b2c3d4e5f'],
    ['git@github.com:org/repo.git', 'git@github.com:org/repo.git'],
  ];
  for (const [t, want] of cases) it(`${t} -> ${want}`, () => assert.equal(redactText(t), want));
});

describe('redactArgv', () => {
  it('curl: headers, URL userinfo and query, -u, -E', () => {
    assert.equal(
      cmd('curl', '-sS', '-H', 'Authorization: Bearer T', '-H', 'Cookie: session=S', '-H', 'X-Api-Key: K', '-H', 'Accept: */*', 'https://u:P@h/p?token=Q&page=2'),
      'curl -sS -H Authorization: REDACTED -H Cookie: REDACTED -H X-Api-Key: REDACTED -H Accept: */* https://u:REDACTED@h/p?token=REDACTED&page=2',
    );
    assert.equal(cmd('/usr/bin/curl', '-u', 'user:P', '-uuser:P', '--user', 'admin:P', '-U', 'proxy:P'), '/usr/bin/curl -u user:REDACTED -uuser:REDACTED --user admin:REDACTED -U proxy:REDACTED');
    // curl asks for the password of a lone user; a key passed as the user (`-u key:`) goes
    assert.equal(cmd('curl', '-u', 'alice', '-u', 'sk_live_1:'), 'curl -u alice -u REDACTED');
    assert.equal(cmd('curl', '-E', 'client.pem:P', '--cert', 'c.pem:P', '--cacert', 'ca.pem'), 'curl -E client.pem:REDACTED --cert c.pem:REDACTED --cacert ca.pem');
    assert.equal(cmd('curl', '-HAuthorization: Bearer T', '-x', 'user:P@proxy:3128'), 'curl -HAuthorization: REDACTED -x user:REDACTED@proxy:3128');
    // an argument that starts with a secret assignment loses all of its rest: a password may hold '&'
    assert.equal(cmd('curl', '-d', 'password=P&user=u', '-d', 'user=u&password=P&x=1', '--data', '{"token":"T"}'), 'curl -d password=REDACTED -d user=u&password=REDACTED&x=1 --data {"token":"REDACTED"}');
    assert.equal(cmd('curl', '--oauth2-bearer', 'T', 'http://h/'), 'curl --oauth2-bearer REDACTED http://h/');
  });

  it('password flags in their spellings', () => {
    assert.equal(cmd('app', '--password=P', '--password', 'P', '--token', 'T', '--api-key', 'K', '--client-secret=S', '--db-password', 'P'), 'app --password=REDACTED --password REDACTED --token REDACTED --api-key REDACTED --client-secret=REDACTED --db-password REDACTED');
    // Go's flag package (-token x) and Java system properties
    assert.equal(cmd('server', '-token', 'T', '-password=P', '-Ddb.password=P', '-Ddb.url=jdbc:mysql://u:P@h/db'), 'server -token REDACTED -password=REDACTED -Ddb.password=REDACTED -Ddb.url=jdbc:mysql://u:REDACTED@h/db');
    assert.equal(cmd('app', '--header=Authorization: Bearer T', '--header=Accept: text/plain'), 'app --header=Authorization: REDACTED --header=Accept: text/plain');
    // httpie: header and query items as positional arguments
    assert.equal(cmd('http', 'GET', 'example.com', 'Authorization:Bearer T', 'api_key==K', 'page==2'), 'http GET example.com Authorization:REDACTED api_key==REDACTED page==2');
  });

  it('a flag that is not followed by its value keeps the next flag', () => {
    assert.equal(cmd('mysql', '--password', '-h', 'db'), 'mysql --password -h db');
    assert.equal(cmd('app', '--token'), 'app --token');
    assert.equal(cmd('app', '--token', '--verbose'), 'app --token --verbose');
  });

  it('switches and descriptions of secrets keep what follows them', () => {
    assert.equal(cmd('docker', 'login', '--password-stdin', 'registry.example.com'), 'docker login --password-stdin registry.example.com');
    assert.equal(cmd('app', '--password-file', '/run/secrets/db', '--no-password', 'db1', '--session-timeout', '30'), 'app --password-file /run/secrets/db --no-password db1 --session-timeout 30');
    assert.equal(cmd('curl', '--cookie-jar', 'jar.txt', '-b', 'cookies.txt'), 'curl --cookie-jar jar.txt -b cookies.txt');
  });

  it('-p is a password only for mysql-style tools', () => {
    assert.equal(cmd('mysql', '-uroot', '-pP', '-h', 'db', '-P', '3306'), 'mysql -uroot -pREDACTED -h db -P 3306');
    assert.equal(cmd('/usr/bin/mysqldump', '-u', 'root', '-p', 'P', 'shop'), '/usr/bin/mysqldump -u root -p REDACTED shop');
    assert.equal(cmd('mariadb', '-p'), 'mariadb -p');
    assert.equal(cmd('mariadb-dump', '--password=P', '--port', '3306'), 'mariadb-dump --password=REDACTED --port 3306');
    assert.equal(cmd('sshpass', '-p', 'P', 'ssh', 'host'), 'sshpass -p REDACTED ssh host');
    // everywhere else -p is a port, a pid, a path, a profile
    assert.equal(cmd('python3', '-m', 'http.server', '-p', '8080'), 'python3 -m http.server -p 8080');
    assert.equal(cmd('ssh', '-p', '2222', 'host'), 'ssh -p 2222 host');
    assert.equal(cmd('psql', '-h', 'db', '-p', '5432', '-U', 'app'), 'psql -h db -p 5432 -U app');
    assert.equal(cmd('redis-server', '-p8080', '--port', '5432'), 'redis-server -p8080 --port 5432');
  });

  it('env-style assignments', () => {
    assert.equal(
      cmd('env', 'PGPASSWORD=P', 'MYSQL_PWD=P', 'FOO_TOKEN=T', 'APP_SECRET=S', 'AWS_SECRET_ACCESS_KEY=K', 'LANG=C', 'PORT=8080', 'psql'),
      'env PGPASSWORD=REDACTED MYSQL_PWD=REDACTED FOO_TOKEN=REDACTED APP_SECRET=REDACTED AWS_SECRET_ACCESS_KEY=REDACTED LANG=C PORT=8080 psql',
    );
  });

  it('--user user:pass for any tool, uid:gid stays', () => {
    assert.equal(cmd('wget', '--user=alice:P', '--proxy-user', 'bob:P'), 'wget --user=alice:REDACTED --proxy-user bob:REDACTED');
    assert.equal(cmd('docker', 'run', '--user', '1000:1000', '-u', '0', 'img'), 'docker run --user 1000:1000 -u 0 img');
  });

  it('non-secret arguments stay as they are', () => {
    const argv = ['node', '--max-old-space-size=512', 'server.js', '--port', '5432', '-p', '8080', 'keyboard=1', '--author', 'me', '--key-name', 'prod', 'http://h/p?page=2'];
    assert.deepEqual(redactArgv(argv), argv);
  });

  it('a title rewritten into argv[0] (setproctitle)', () => {
    assert.equal(cmd('app --password P --port 1'), 'app --password REDACTED --port 1');
    assert.equal(cmd('nginx: worker process'), 'nginx: worker process');
  });

  it('never leaves a secret behind', () => {
    const S = 'S3CR3TVALUE';
    const lines: string[][] = [
      ['curl', '-H', `Authorization: Bearer ${S}`], ['curl', '-H', `Cookie: a=${S}`], ['curl', `https://u:${S}@h/`], ['curl', `https://${S}@h/`],
      ['curl', `http://h/?token=${S}`], ['curl', '-u', `u:${S}`], ['app', `--password=${S}`], ['app', '--password', S], ['mysql', `-p${S}`],
      ['env', `X_TOKEN=${S}`], ['app', `--header=X-Auth-Token: ${S}`], ['app', `-Dsecret=${S}`], ['app', `password=${S}`],
    ];
    for (const argv of lines) assert.ok(!cmd(...argv).includes(S), cmd(...argv));
  });
});
