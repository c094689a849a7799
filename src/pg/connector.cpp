#include "neptun/pg/connector.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace neptun::pg {

namespace {

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t from = 0;
    while (true) {
        auto comma = s.find(',', from);
        out.push_back(s.substr(from, comma == std::string::npos ? comma : comma - from));
        if (comma == std::string::npos) break;
        from = comma + 1;
    }
    return out;
}

}  // namespace

connect_target parse_connect_target(const std::string& conninfo) {
    connect_target t;
    PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), nullptr);
    std::string host, hostaddr, port;
    for (auto* o = parsed; o && o->keyword; ++o) {
        if (!o->val) continue;
        std::string_view k = o->keyword;
        if (k == "host")
            host = o->val;
        else if (k == "hostaddr")
            hostaddr = o->val;
        else if (k == "port")
            port = o->val;
    }
    if (parsed) PQconninfoFree(parsed);
    t.pass_through = !hostaddr.empty() || host.empty();
    if (t.pass_through) return t;
    t.hosts = split(host);
    auto ports = split(port);
    for (std::size_t i = 0; i < t.hosts.size(); ++i)
        t.ports.push_back(ports.size() == 1  ? ports[0]
                          : i < ports.size() ? ports[i]
                                             : std::string());
    return t;
}

host_kind classify_host(const std::string& host) {
    if (host.empty() || host.front() == '/' || host.front() == '@') return host_kind::local;
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    return ec ? host_kind::name : host_kind::literal;
}

void host_lists::add(const std::string& h, const std::string& addr, const std::string& p) {
    if (entries > 0) {
        host += ',';
        hostaddr += ',';
        port += ',';
    }
    host += h;
    hostaddr += addr;
    port += p;
    ++entries;
}

std::chrono::milliseconds backoff_ceiling(unsigned attempt, std::chrono::milliseconds min,
                                          std::chrono::milliseconds max) {
    return std::chrono::milliseconds(
        std::min<std::int64_t>(max.count(), min.count() << std::min(attempt, 16u)));
}

}  // namespace neptun::pg
