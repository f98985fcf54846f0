from tortoise import migrations
from tortoise.migrations import operations as ops
from models.offers import OfferStatus, SlotStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0012_reminders')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FreedSlot',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='freed_slots', on_delete=OnDelete.RESTRICT)),
                ('practitioner', fields.ForeignKeyField('models.StaffUser', source_field='practitioner_id', db_constraint=True, to_field='id', related_name='freed_slots', on_delete=OnDelete.RESTRICT)),
                ('location', fields.ForeignKeyField('models.Location', source_field='location_id', null=True, db_constraint=True, to_field='id', related_name='freed_slots', on_delete=OnDelete.RESTRICT)),
                ('appointment', fields.ForeignKeyField('models.Appointment', source_field='appointment_id', db_constraint=True, to_field='id', related_name='freed_slots', on_delete=OnDelete.RESTRICT)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=SlotStatus.WAITING, description='WAITING: waiting\nOFFERED: offered\nUNMATCHED: unmatched\nTAKEN: taken', enum_type=SlotStatus, max_length=10)),
                ('offered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('taken_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('refilled_by_offer', fields.BooleanField(default=False)),
            ],
            options={'table': 'freed_slot', 'app': 'models', 'indexes': [Index(fields=['practitioner_id', 'starts_at']), Index(fields=['practice_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='EarlierSlotOffer',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slot', fields.ForeignKeyField('models.FreedSlot', source_field='slot_id', db_constraint=True, to_field='id', related_name='offers', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='earlier_slot_offers', on_delete=OnDelete.RESTRICT)),
                ('appointment', fields.ForeignKeyField('models.Appointment', source_field='appointment_id', db_constraint=True, to_field='id', related_name='earlier_slot_offers', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=OfferStatus.SENT, description='SENT: sent\nDECLINED: declined\nACCEPTED: accepted\nEXPIRED: expired\nWITHDRAWN: withdrawn', enum_type=OfferStatus, max_length=10)),
                ('sent_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'earlier_slot_offer', 'app': 'models', 'unique_together': (('slot', 'client'),), 'indexes': [Index(fields=['client_id', 'status'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('appointment', fields.OneToOneField('models.Appointment', source_field='appointment_id', db_constraint=True, to_field='id', related_name='waitlist_entry', on_delete=OnDelete.RESTRICT)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='waitlist_entries', on_delete=OnDelete.RESTRICT)),
                ('joined_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('is_active', fields.BooleanField(default=True)),
            ],
            options={'table': 'waitlist_entry', 'app': 'models', 'indexes': [Index(fields=['is_active', 'joined_at'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.AddField(
            model_name='Practice',
            name='earlier_slot_alerts',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Practice',
            name='earlier_slot_min_days',
            field=fields.SmallIntField(default=10, db_default=10),
        ),
    ]
