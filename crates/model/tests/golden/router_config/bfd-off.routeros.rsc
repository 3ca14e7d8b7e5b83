# cic: the customer's side of private connections, for MikroTik RouterOS 7.
# pc100 (site1-vlan100) at pop1, VLAN 100: 169.254.100.2/30 ↔ cloud 169.254.100.1
# pc200 (site1-vlan200) at pop2, VLAN 200: 169.254.200.2/30 ↔ cloud 169.254.200.1
# BGP AS 65001 (you) ↔ AS 200350 (cloud); BFD off; graceful restart on.
# Import: only the routing instance's VPC prefixes. Export: only the prefixes you listed.
/ip firewall address-list add list=cic-mine4 address=192.168.10.0/24
# pc100 at pop1, VLAN 100
/interface vlan add name=vlan100 vlan-id=100 interface=ether2
/ip address add address=169.254.100.2/30 interface=vlan100
/routing filter rule add chain=cic-pc100-v4-in rule="if (dst==10.128.0.0/24) { accept }"
/routing filter rule add chain=cic-pc100-v4-in rule="reject"
/routing filter rule add chain=cic-pc100-v4-out rule="if (dst==192.168.10.0/24) { accept }"
/routing filter rule add chain=cic-pc100-v4-out rule="reject"
/routing bgp connection add name=cic-pc100-v4 as=65001 local.role=ebgp local.address=169.254.100.2 remote.address=169.254.100.1 remote.as=200350 address-families=ip use-bfd=no input.filter=cic-pc100-v4-in input.limit-process-routes-ipv4=100 output.filter-chain=cic-pc100-v4-out output.network=cic-mine4
# pc200 at pop2, VLAN 200
/interface vlan add name=vlan200 vlan-id=200 interface=ether2
/ip address add address=169.254.200.2/30 interface=vlan200
/routing filter rule add chain=cic-pc200-v4-in rule="if (dst==10.128.0.0/24) { accept }"
/routing filter rule add chain=cic-pc200-v4-in rule="reject"
/routing filter rule add chain=cic-pc200-v4-out rule="if (dst==192.168.10.0/24) { accept }"
/routing filter rule add chain=cic-pc200-v4-out rule="reject"
/routing bgp connection add name=cic-pc200-v4 as=65001 local.role=ebgp local.address=169.254.200.2 remote.address=169.254.200.1 remote.as=200350 address-families=ip use-bfd=no input.filter=cic-pc200-v4-in input.limit-process-routes-ipv4=100 output.filter-chain=cic-pc200-v4-out output.network=cic-mine4
# Graceful restart: RouterOS 7 keeps no routes for a restarting peer; BFD and the other PoP carry traffic meanwhile.
