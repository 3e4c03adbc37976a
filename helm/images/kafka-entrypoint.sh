#!/bin/sh
# Entry point of helm/images/Dockerfile.kafka: writes the broker's configuration (the one
# scripts/services.sh writes, with a listener for other containers), formats the storage on
# first start, then runs the broker in the foreground.
set -eu
data=/var/lib/kafka/data
conf=/var/lib/kafka/server.properties
cp="/opt/kafka/libs/*"
cat >"$conf" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://0.0.0.0:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_ADVERTISED_HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
num.partitions=$KAFKA_PARTITIONS
group.initial.rebalance.delay.ms=0
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
CONF
if [ ! -f "$data/meta.properties" ]; then
  id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
  java -cp "$cp" kafka.tools.StorageTool format --standalone -t "$id" -c "$conf"
fi
exec java "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP" -cp "$cp" kafka.Kafka "$conf"
