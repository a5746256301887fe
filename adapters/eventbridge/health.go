package eventbridge

import "context"

// Ping says whether EventBridge answers for the bus (DescribeEventBus).
func (p *Publisher) Ping(ctx context.Context, bus string) error { return p.CheckBus(ctx, bus) }
