package catalog

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/emitd/emitd/adapters/amqp"
	"github.com/emitd/emitd/adapters/eventbridge"
	"github.com/emitd/emitd/adapters/kafka"
	"github.com/emitd/emitd/adapters/natsjs"
	"github.com/emitd/emitd/adapters/sns"
	"github.com/emitd/emitd/adapters/sqs"
	"github.com/emitd/emitd/configs"
	"github.com/emitd/emitd/configs/redact"
	"github.com/emitd/emitd/domain"
	"github.com/emitd/emitd/publisher"
)

// AsyncAPIVersion is the version of the AsyncAPI document.
const AsyncAPIVersion = "3.0.0"

// Versions of the AsyncAPI bindings used.
const (
	kafkaBinding = "0.5.0"
	amqpBinding  = "0.3.0"
	natsBinding  = "0.1.0"
	sqsBinding   = "0.2.0"
	snsBinding   = "0.1.0"
)

type obj = map[string]any

// asyncAPISchemaName is the name of a schema in components.schemas.
func (b *builder) asyncAPISchemaName(id string) string {
	for _, n := range b.names {
		if n.id == id {
			return n.name
		}
	}
	panic("catalog: no schema " + id)
}

// forAsyncAPI turns a 2020-12 schema resource into an AsyncAPI Schema
// Object: references become component references, and the $id moves to
// x-json-schema-id (the AsyncAPI document names every schema's JSON Schema
// twin; AsyncAPI's own schema format is draft-07 based and knows no $id
// resources).
func (b *builder) forAsyncAPI(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			switch k {
			case "$schema":
			case "$id":
				out["x-json-schema-id"] = x
			case "$ref":
				out[k] = "#/components/schemas/" + b.asyncAPISchemaName(x.(string))
			default:
				out[k] = b.forAsyncAPI(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = b.forAsyncAPI(x)
		}
		return out
	case []string:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = x
		}
		return out
	}
	return v
}

func schemaRef(name string) obj  { return obj{"$ref": "#/components/schemas/" + name} }
func messageRef(name string) obj { return obj{"$ref": "#/components/messages/" + name} }

func (b *builder) asyncAPIDoc(events []domain.EventContract, sample map[domain.Variant]domain.Envelope) error {
	cfg := b.cfg
	schemas := obj{}
	for _, n := range b.names {
		schemas[n.name] = b.forAsyncAPI(b.schemas[n.id])
	}
	messages := obj{}
	cmdServer, evServer := "commands", "events"
	servers := obj{}
	cs, err := server(cfg, cfg.Commands.Broker)
	if err != nil {
		return err
	}
	es, err := server(cfg, cfg.Events.Broker)
	if err != nil {
		return err
	}
	if cfg.Commands.Broker == cfg.Events.Broker {
		cmdServer, evServer = "broker", "broker"
		servers["broker"] = cs
	} else {
		servers[cmdServer], servers[evServer] = cs, es
	}
	onServer := func(name string) []any { return []any{obj{"$ref": "#/servers/" + name}} }

	// Commands, outcomes, dead letters: on the commands broker.
	cmdBroker := cfg.Commands.Broker
	commandHeaders, err := b.headers(cmdBroker, commandMessage(), nil)
	if err != nil {
		return err
	}
	cmdChannelMsgs := obj{}
	var cmdOpMsgs []any
	for _, t := range domain.CommandTypes() {
		name := "command." + string(t)
		m := obj{"name": string(t), "title": string(t) + " command", "contentType": "application/json",
			"payload": schemaRef(name), "headers": commandHeaders,
			"correlationId": obj{"location": "$message.payload#/correlationId"}}
		if mb := messageBindings(cmdBroker, "the message UUID (emitd send uses the command id)"); mb != nil {
			m["bindings"] = mb
		}
		messages[name] = m
		cmdChannelMsgs[string(t)] = messageRef(name)
		cmdOpMsgs = append(cmdOpMsgs, obj{"$ref": "#/channels/commands/messages/" + string(t)})
	}
	outcomeHeaders, err := b.headers(cmdBroker, publisher.OutcomeMessage(publisher.OutcomeRecord{MessageID: "m", CorrelationID: "c", Payload: []byte("{}")}), nil)
	if err != nil {
		return err
	}
	messages["outcome"] = obj{"name": "Outcome", "title": "Outcome of a command", "contentType": "application/json",
		"payload": schemaRef("outcome"), "headers": outcomeHeaders,
		"correlationId": obj{"location": "$message.payload#/correlationId"}}
	if mb := messageBindings(cmdBroker, "the message UUID"); mb != nil {
		messages["outcome"].(obj)["bindings"] = mb
	}
	messages["deadLetter"] = obj{"name": "DeadLetter", "title": "A command that could not be processed",
		"summary":     "The original payload and metadata, byte for byte, with the poison context beside them.",
		"contentType": "application/octet-stream",
		"payload":     obj{"description": "the original command bytes, unchanged (they may be anything: this is where what is not a command goes)"},
		"headers":     schemaRef("deadLetterContext")}

	channels := obj{
		"commands": b.channel(cmdBroker, cfg.Commands.Topic, "Commands",
			"Services put commands here; emitd decides each against the slot aggregate.", onServer(cmdServer), cmdChannelMsgs),
		"results": b.channel(cmdBroker, cfg.Commands.ResultsTopic, "Outcomes",
			"One outcome per command: accepted (with its event ids), rejected or dead-lettered (with the reason).",
			onServer(cmdServer), obj{"Outcome": messageRef("outcome")}),
		"poison": b.channel(cmdBroker, cfg.Commands.DLQTopic, "Poison queue",
			"Commands that cannot be processed, with the reason (`emitd dlq`, `emitd replay`).",
			onServer(cmdServer), obj{"DeadLetter": messageRef("deadLetter")}),
	}
	operations := obj{
		"receiveCommands": b.operation(cmdBroker, "receive", "commands", "emitd takes commands, as the consumer group "+cfg.Commands.Group+".", cmdOpMsgs, true),
		"sendOutcomes":    b.operation(cmdBroker, "send", "results", "emitd answers every command.", []any{obj{"$ref": "#/channels/results/messages/Outcome"}}, false),
		"sendDeadLetters": b.operation(cmdBroker, "send", "poison", "emitd moves what it cannot process here.", []any{obj{"$ref": "#/channels/poison/messages/DeadLetter"}}, false),
	}

	// The buses.
	evBroker := cfg.Events.Broker
	for _, v := range []domain.Variant{domain.VariantDomain, domain.VariantAnalytics} {
		chID, bus, title, desc := "domainBus", cfg.Events.DomainBus, "Domain events",
			"Every event, as the slot aggregate decided it (data.slotStatus is the slot's new state)."
		if v == domain.VariantAnalytics {
			chID, bus, title, desc = "analyticsBus", cfg.Events.AnalyticsBus, "Analytics copies",
				"A copy of every domain event, right after it: a fresh metadata.id and no data.slotStatus."
		}
		chMsgs := obj{}
		var opMsgs []any
		for _, ec := range events {
			info := b.cat.Messages[MessageKey(v, ec.DetailType)]
			env := sample[v]
			env.EventBusName, env.Source, env.DetailType = bus, ec.Source, ec.DetailType
			msg, err := b.format.Message(env)
			if err != nil {
				return err
			}
			name := "event." + ec.DetailType + "." + string(v)
			m := obj{"name": ec.DetailType, "title": ec.DetailType + map[domain.Variant]string{domain.VariantDomain: "", domain.VariantAnalytics: " (analytics copy)"}[v],
				"summary": fmt.Sprintf("Source %s, DetailType %s; data.event %s.", ec.Source, ec.DetailType, ec.Event),
				"payload": schemaRef(b.asyncAPISchemaName(info.PayloadID))}
			ct := "application/json"
			if b.format.CloudEvents() && !b.format.Binary() {
				ct = "application/cloudevents+json"
			}
			m["contentType"] = ct
			if evBroker == eventbridge.BrokerName {
				m["x-eventbridge"] = obj{"eventBusName": bus, "source": ec.Source, "detailType": ec.DetailType,
					"detail": "the Detail, as JSON text (see the payload's Detail)"}
			} else {
				h, err := b.headers(evBroker, msg, &env)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				m["headers"] = h
				m["correlationId"] = obj{"location": "$message.header#/" + headerName(evBroker, publisher.MetaCorrelationID)}
			}
			if mb := messageBindings(evBroker, "the slot id: each slot's events share a partition and keep their order"); mb != nil {
				m["bindings"] = mb
			}
			if info.CloudEventID != "" {
				m["x-cloudevents"] = obj{"mode": b.format.Mode, "specversion": publisher.CloudEventsSpecVersion,
					"dataschema": info.DetailID, "schema": "#/components/schemas/" + b.asyncAPISchemaName(info.CloudEventID)}
			}
			messages[name] = m
			chMsgs[ec.DetailType] = messageRef(name)
			opMsgs = append(opMsgs, obj{"$ref": "#/channels/" + chID + "/messages/" + ec.DetailType})
		}
		channels[chID] = b.channel(evBroker, bus, title, desc, onServer(evServer), chMsgs)
		op := "sendDomainEvents"
		if v == domain.VariantAnalytics {
			op = "sendAnalyticsEvents"
		}
		operations[op] = b.operation(evBroker, "send", chID, "The outbox relay publishes in commit order, at least once; consumers drop repeats by metadata.id.", opMsgs, false)
	}

	format := "EventBridge entries ({EventBusName, Source, DetailType, Detail}; Detail is JSON text)"
	if b.format.CloudEvents() {
		format = "CloudEvents 1.0 in " + b.format.Mode + " mode (type = Source, source = /<domain>/<system>, subject = the slot id, data = the Detail)"
	}
	doc := obj{
		"asyncapi": AsyncAPIVersion,
		"id":       "urn:emitd:" + strings.ToLower(cfg.Metadata.Domain+"."+cfg.Metadata.System),
		"info": obj{
			"title":   "emitd: " + cfg.Metadata.Domain + " " + cfg.Metadata.System,
			"version": strconv.Itoa(cfg.Metadata.Version),
			"description": "The commands emitd takes, the outcomes and dead letters it answers with, and the events it publishes, " +
				"for this configuration. Events travel as " + format + ". Every schema's JSON Schema 2020-12 twin " +
				"(x-json-schema-id) is in `emitd catalog --format jsonschema`. info.version is metadata.version: see the README " +
				"on how a new version of an event is introduced.",
		},
		"defaultContentType": "application/json",
		"servers":            servers,
		"channels":           channels,
		"operations":         operations,
		"components":         obj{"schemas": schemas, "messages": messages},
	}
	out, err := render(doc)
	b.cat.asyncAPI = out
	return err
}

// commandMessage is a command as `emitd send` publishes it.
func commandMessage() *message.Message {
	m := message.NewMessage("0128c8d4-5c3c-4b6e-9a57-2f3a1c9d8e01", []byte("{}"))
	m.Metadata.Set(publisher.MetaCorrelationID, "c")
	return m
}

func (b *builder) channel(broker, address, title, desc string, servers []any, msgs obj) obj {
	c := obj{"address": address, "title": title, "description": desc, "servers": servers, "messages": msgs}
	if bind := b.channelBindings(broker, address); bind != nil {
		c["bindings"] = bind
	}
	if broker == eventbridge.BrokerName {
		c["x-eventbridge"] = obj{"eventBusName": address}
	}
	return c
}

func (b *builder) operation(broker, action, channel, desc string, msgs []any, commands bool) obj {
	o := obj{"action": action, "channel": obj{"$ref": "#/channels/" + channel}, "description": desc, "messages": msgs}
	if bind := b.operationBindings(broker, commands, channel); bind != nil {
		o["bindings"] = bind
	}
	return o
}

// headerName is the header or attribute that carries a metadata key on broker.
func headerName(broker, key string) string {
	switch broker {
	case kafka.BrokerName:
		return kafka.HeaderName(key)
	case natsjs.NATSName, natsjs.EmbeddedName:
		return natsjs.HeaderName(key)
	case amqp.BrokerName:
		return amqp.HeaderName(key)
	}
	return key
}

// headers describes the headers (attributes, application properties) that
// the adapter of broker writes for msg: its metadata under the adapter's
// names, and what the adapter adds. env, for an event, pins the values.
func (b *builder) headers(broker string, msg *message.Message, env *domain.Envelope) (obj, error) {
	uuidSchema := obj{"type": "string", "description": "the message UUID"}
	if env != nil {
		uuidSchema = obj{"type": "string", "pattern": uuidV4, "description": "the message UUID: the event id"}
	}
	rule := func(key, value string) (obj, bool) {
		switch key {
		case publisher.MetaCorrelationID:
			return obj{"type": "string", "minLength": 1, "description": "the correlation id: the command's, carried into its events and outcome"}, true
		}
		if env == nil {
			return nil, false
		}
		switch key {
		case publisher.MetaSource:
			return obj{"const": env.Source}, true
		case publisher.MetaDetailType:
			return obj{"const": env.DetailType}, true
		case publisher.MetaEventID:
			return obj{"type": "string", "pattern": uuidV4, "description": "metadata.id"}, true
		case publisher.MetaSlotID:
			return obj{"type": "string", "pattern": canonicalUUID, "description": "the slot id"}, true
		case publisher.MetaContentType:
			return obj{"const": value}, true
		}
		attr, ok := strings.CutPrefix(key, publisher.CEAttributePrefix)
		if !ok {
			return nil, false
		}
		switch attr {
		case "specversion", "source", "type", "dataschema":
			return obj{"const": value, "description": "CloudEvents " + attr}, true
		case "id":
			return obj{"type": "string", "pattern": uuidV4, "description": "CloudEvents id: metadata.id"}, true
		case "subject":
			return obj{"type": "string", "pattern": canonicalUUID, "description": "CloudEvents subject: the slot id"}, true
		case "time":
			return obj{"type": "string", "pattern": millisUTC, "description": "CloudEvents time: metadata.timestamp"}, true
		}
		return nil, false
	}
	props := obj{}
	var required []any
	put := func(name string, s obj) {
		props[name] = s
		required = append(required, name)
	}
	switch broker {
	case eventbridge.BrokerName:
		return nil, nil
	case sqs.BrokerName, sns.BrokerName:
		for name, v := range sqs.EncodeAttributes(msg.UUID, msg.Metadata) {
			if name == sqs.UUIDAttribute {
				put(name, uuidSchema)
				continue
			}
			s, ok := rule(name, v)
			if !ok {
				return nil, fmt.Errorf("no rule for message attribute %q", name)
			}
			put(name, s)
		}
	default:
		for k, v := range msg.Metadata {
			if broker == amqp.BrokerName && k == publisher.MetaContentType {
				continue // the content-type property, not a header
			}
			s, ok := rule(k, v)
			if !ok {
				return nil, fmt.Errorf("no rule for metadata key %q", k)
			}
			put(headerName(broker, k), s)
		}
		switch broker {
		case kafka.BrokerName:
			put(kafka.UUIDHeader, uuidSchema)
		case natsjs.NATSName, natsjs.EmbeddedName:
			put(natsjs.UUIDHeader, uuidSchema)
			put(nats.MsgIdHdr, obj{"type": "string", "description": "the message UUID: JetStream drops a repeat within its duplicate window"})
		case amqp.BrokerName:
			put(amqp.UUIDHeader, uuidSchema)
		}
	}
	sortAny(required)
	what := "headers"
	switch broker {
	case sqs.BrokerName, sns.BrokerName:
		what = "message attributes (String)"
	case amqp.BrokerName:
		what = "headers (application properties); the properties message-id, correlation-id and content-type are set too"
	}
	return obj{"type": "object", "description": "The " + what + " emitd writes; brokers and later hops may add their own.",
		"properties": props, "required": required}, nil
}

func sortAny(v []any) {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = x.(string)
	}
	sortStrings(s)
	for i, x := range s {
		v[i] = x
	}
}

func messageBindings(broker, key string) obj {
	if broker != kafka.BrokerName {
		return nil
	}
	return obj{"kafka": obj{"key": obj{"type": "string", "description": "record key: " + key + " (murmur2, like the Java client)"},
		"bindingVersion": kafkaBinding}}
}

func (b *builder) channelBindings(broker, address string) obj {
	cfg := b.cfg
	switch broker {
	case kafka.BrokerName:
		k := obj{"topic": address, "bindingVersion": kafkaBinding}
		if kc := kafka.SectionOf(cfg); kc != nil && kc.CreateIfMissing {
			p, r := kc.Partitions, kc.ReplicationFactor
			if p == 0 {
				p = kafka.DefaultPartitions
			}
			if r == 0 {
				r = kafka.DefaultReplicationFactor
			}
			k["partitions"], k["replicas"] = p, r
		}
		return obj{"kafka": k}
	case amqp.BrokerName:
		return obj{"amqp": obj{"is": "routingKey", "exchange": obj{"name": amqpExchange(cfg), "type": "topic", "durable": true,
			"autoDelete": false, "vhost": amqpVhost(cfg)}, "bindingVersion": amqpBinding}}
	case sqs.BrokerName:
		return obj{"sqs": obj{"queue": obj{"name": address, "fifoQueue": sqs.IsFIFO(address)}, "bindingVersion": sqsBinding}}
	case sns.BrokerName:
		ordering := "standard"
		if sqs.IsFIFO(address) {
			ordering = "FIFO"
		}
		return obj{"sns": obj{"name": address, "ordering": obj{"type": ordering}, "bindingVersion": snsBinding}}
	}
	return nil
}

func (b *builder) operationBindings(broker string, commands bool, channel string) obj {
	cfg := b.cfg
	switch broker {
	case kafka.BrokerName:
		if !commands {
			return nil
		}
		clientID := "emitd"
		if kafka.SectionOf(cfg).ClientID != "" {
			clientID = kafka.SectionOf(cfg).ClientID
		}
		return obj{"kafka": obj{"groupId": obj{"type": "string", "enum": []any{cfg.Commands.Group}},
			"clientId": obj{"type": "string", "enum": []any{clientID}}, "bindingVersion": kafkaBinding}}
	case natsjs.NATSName, natsjs.EmbeddedName:
		if !commands {
			return nil
		}
		return obj{"nats": obj{"queue": cfg.Commands.Group, "bindingVersion": natsBinding}}
	case amqp.BrokerName:
		if commands {
			return nil
		}
		// Outcomes are published without the mandatory flag (an answer no
		// queue is bound for is dropped); everything else waits for a queue.
		return obj{"amqp": obj{"deliveryMode": 2, "mandatory": channel != "results", "bindingVersion": amqpBinding}}
	}
	return nil
}

func amqpExchange(cfg *configs.Config) string {
	if a := amqp.SectionOf(cfg); a != nil && a.Exchange != "" {
		return a.Exchange
	}
	return amqp.DefaultExchange
}

func amqpVhost(cfg *configs.Config) string {
	if a := amqp.SectionOf(cfg); a != nil {
		if u, err := url.Parse(a.URL); err == nil && strings.TrimPrefix(u.Path, "/") != "" {
			return strings.TrimPrefix(u.Path, "/")
		}
	}
	return "/"
}

// server describes where broker is, without credentials.
func server(cfg *configs.Config, broker string) (obj, error) {
	hostOf := func(raw string) (string, string) {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			return redact.URL(raw), "" // a URL that does not parse may still hold a password
		}
		return u.Host, u.Scheme
	}
	aws := func(service, section, region, endpoint, what string) obj {
		if endpoint != "" {
			host, scheme := hostOf(endpoint)
			return obj{"host": host, "protocol": protocolOr(scheme, service), "description": what + " at the configured endpoint"}
		}
		v := obj{"description": "the AWS region (brokers." + section + ".region, else AWS_REGION or the profile's)"}
		if region != "" {
			v["default"] = region
		}
		return obj{"host": service + ".{region}.amazonaws.com", "protocol": service, "description": what,
			"variables": obj{"region": v}}
	}
	switch broker {
	case natsjs.EmbeddedName:
		e := natsjs.EmbeddedSectionOf(cfg)
		return obj{"host": e.Addr(), "protocol": "nats",
			"description": "emitd's embedded NATS JetStream broker (loopback only); one stream EMITD_<topic> per topic"}, nil
	case natsjs.NATSName:
		n := natsjs.NATSSectionOf(cfg)
		urls := strings.Split(n.URL, ",")
		host, scheme := hostOf(urls[0])
		s := obj{"host": host, "protocol": "nats", "description": "NATS JetStream; one stream EMITD_<topic> per topic"}
		if scheme == "tls" || n.TLS.On() {
			s["description"] = "NATS JetStream over TLS; one stream EMITD_<topic> per topic"
		}
		if len(urls) > 1 {
			s["description"] = s["description"].(string) + fmt.Sprintf(" (%d servers in the cluster)", len(urls))
		}
		return s, nil
	case kafka.BrokerName:
		k := kafka.SectionOf(cfg)
		s := obj{"host": k.Brokers[0], "protocol": "kafka", "description": "Kafka; bootstrap brokers " + strings.Join(k.Brokers, ", ")}
		if k.TLS.On() {
			s["protocol"] = "kafka-secure" // AsyncAPI's name for Kafka over TLS
		}
		if k.Version != "" {
			s["protocolVersion"] = k.Version
		}
		return s, nil
	case sqs.BrokerName:
		q := sqs.SectionOf(cfg)
		return aws("sqs", "sqs", q.Region, q.Endpoint, "Amazon SQS"), nil
	case sns.BrokerName:
		q := sns.SectionOf(cfg)
		return aws("sns", "sns", q.Region, q.Endpoint, "Amazon SNS"), nil
	case eventbridge.BrokerName:
		q := eventbridge.SectionOf(cfg)
		s := aws("events", "eventbridge", q.Region, q.Endpoint, "Amazon EventBridge (PutEvents)")
		s["protocol"] = "https"
		return s, nil
	case amqp.BrokerName:
		host, scheme := hostOf(amqp.SectionOf(cfg).URL)
		return obj{"host": host, "protocol": protocolOr(scheme, "amqp"), "protocolVersion": "0.9.1",
			"description": "RabbitMQ; one durable topic exchange " + amqpExchange(cfg) + ", routing key = the topic or bus"}, nil
	}
	return nil, fmt.Errorf("no server description for broker %q", broker)
}

func protocolOr(scheme, def string) string {
	if scheme == "" {
		return def
	}
	return scheme
}
